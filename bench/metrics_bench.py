"""Our nDCG@10 against pytrec_eval's, on the budget benchmark's access pattern, and a whole run both ways.

    .venv/bin/python bench/metrics_bench.py --out bench/results

``rerank bench budgets`` scores one ranking at a time (per query, repeat, sampler, budget, calibration and
aggregator: ~10^5 calls per run), so the question is the cost of one call. Per round, in interleaved order:
(a) ``ndcg_at_k`` on each DL19 query's BM25 top 100 shuffled in its top 20 (as a replay leaves it); (b) the
same through ``pytrec_eval.RelevanceEvaluator(...).evaluate`` with the evaluator built once per query (the
library's best case: the replay would also pay the per-query set-up) and the ranking as a ``{docid: score}``
dict. Also one whole-run evaluation (43 queries, 4 measures) both ways. Writes ``metrics_cpu.json`` / ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

import pytrec_eval

from rerank.evaluation import evaluate, ndcg_at_k, rank_docs, read_qrels, read_run
from rerank.evaluation.measures import evaluate_run

DATA = Path(os.environ.get("RERANK_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA / "trec-dl-2019-passage")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-query", type=int, default=50, help="shuffled rankings per query and round")
    args = parser.parse_args()
    qrels, run = read_qrels(args.data / "qrels.txt"), read_run(args.data / "run.bm25.top100.trec")
    rng = random.Random(0)
    cases = []
    for qid in sorted(run):
        ranked = rank_docs(run[qid])
        for _ in range(args.per_query):
            top = ranked[:20]
            rng.shuffle(top)
            cases.append((qid, top + ranked[20:]))
    evaluators = {q: pytrec_eval.RelevanceEvaluator({q: qrels[q]}, {"ndcg_cut.10"}) for q in run}

    def ours() -> list[float]:
        return [ndcg_at_k(ranking, qrels[qid], 10) for qid, ranking in cases]

    def library() -> list[float]:
        return [evaluators[qid].evaluate({qid: {d: float(len(ranking) - i) for i, d in enumerate(ranking)}})[qid][
            "ndcg_cut_10"] for qid, ranking in cases]

    def run_ours() -> dict:
        return evaluate(run, qrels, ("ndcg@10", "map", "mrr", "recall@100"), rel_level=2)[0]

    def run_library() -> dict:
        return evaluate_run(run, qrels, ("ndcg_cut_10", "map", "recip_rank", "recall_100"), rel_level=2).means

    a, b = ours(), library()
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-9
    times: dict[str, list[float]] = {"ours": [], "pytrec_eval": [], "run_ours": [], "run_pytrec_eval": []}
    for r in range(args.rounds):
        order = [("ours", ours), ("pytrec_eval", library), ("run_ours", run_ours), ("run_pytrec_eval", run_library)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "calls": len(cases), "rounds": args.rounds, "python": platform.python_version(),
        "us_per_call": {"ours": med["ours"] / len(cases) * 1e6, "pytrec_eval": med["pytrec_eval"] / len(cases) * 1e6},
        "ratio_pytrec_over_ours": med["pytrec_eval"] / med["ours"],
        "whole_run_ms": {"ours": med["run_ours"] * 1e3, "pytrec_eval": med["run_pytrec_eval"] * 1e3},
        "whole_run_ratio_pytrec_over_ours": med["run_pytrec_eval"] / med["run_ours"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "metrics_cpu.md").write_text(
        "# nDCG@10: ours vs pytrec_eval (CPU)\n\n"
        "`.venv/bin/python bench/metrics_bench.py --out bench/results` (median of "
        f"{args.rounds} interleaved rounds, {len(cases)} single-ranking calls per round; values agree to 1e-9)\n\n"
        "| | ours | pytrec_eval | pytrec_eval / ours |\n|---|---|---|---|\n"
        f"| one ranking (budget bench pattern), µs/call | {result['us_per_call']['ours']:.1f} | "
        f"{result['us_per_call']['pytrec_eval']:.1f} | {result['ratio_pytrec_over_ours']:.2f} |\n"
        f"| whole DL19 BM25 run, 4 measures, ms | {result['whole_run_ms']['ours']:.1f} | "
        f"{result['whole_run_ms']['pytrec_eval']:.1f} | {result['whole_run_ratio_pytrec_over_ours']:.2f} |\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
