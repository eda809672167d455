"""Selective escalation with the embedded SmolLM2 PRP as the strong judge, on TREC DL 2019 passage.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/escalation_smollm_bench.py --store STORE \\
        --out bench/results/escalation_smollm

The first ``--queries`` (10) judged queries in the run file's order (as bench/setwise_smollm_bench.py and
bench/results/prp_smollm_dl19.md), BM25 top ``--depth`` (20); cascade ``--stage minilm:20 --stage smollm-prp:20``
with the defaults at the last stage (all 380 ordered pairs, both orders). SmolLM2 runs at its measured CPU default
(torch int8, shared prompt prefixes, ``--threads`` torch threads) and answers every ordered pair once, cached by
prompt in ``--answers`` (bench/smollm_answers.py: a stopped run resumes; PRP heapsort in
bench/setwise_smollm_bench.py reuses the same answers); MiniLM's answers come from the preference cache of
``rerank bench budgets``. Calibration and the splits as bench/escalation_bench.py (``run_alpha``): 20 random
splits of the queries into a calibration half (5) and a test half (5), ``np.random.default_rng(split)``'s
permutation, its first half calibrating; alpha 0.1 / 0.2, delta 0.1, references ``strong`` and ``qrels``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from escalation_bench import ALPHAS, REFERENCES, UNITS, QueryReplay, run_alpha, write_results
from smollm_answers import AnswerCache, SmolAnswers, smollm

from rerank.bench.budgets import QueryPrefs, cached_preferences, first_stage_level, load_dataset
from rerank.evaluation import ndcg_at_k
from rerank.pipeline import Candidate, Stage, rerank_cascade
from rerank.specs import TrecData, load_comparator

CHEAP, STRONG = "minilm", "smollm-prp"


def first_judged(data, n: int) -> list[str]:
    """The first ``n`` judged queries in the run file's order."""
    return [q for q in dict.fromkeys(data.run) if q in data.qrels and q in data.queries][:n]


def strong_preferences(data, cheap_prefs: list[QueryPrefs], smol: SmolAnswers) -> list[QueryPrefs]:
    """Every ordered pair of each query's top (the cheap judge's candidates), one batch per first passage."""
    out = []
    started = time.monotonic()
    for done, q in enumerate(cheap_prefs):
        texts = [data.corpus[d] for d in q.docids]
        n = len(texts)
        P = np.full((n, n), 0.5)
        for a in range(n):
            others = [b for b in range(n) if b != a]
            P[a, others] = smol.compare(data.queries[q.qid], [(texts[a], texts[b]) for b in others])
        out.append(QueryPrefs(q.qid, q.docids, q.rest, P))
        elapsed = time.monotonic() - started
        print(f"[{time.strftime('%H:%M:%S')}] strong answers: query {q.qid} done ({done + 1}/{len(cheap_prefs)}), "
              f"{elapsed:.0f} s, about {elapsed / (done + 1) * (len(cheap_prefs) - done - 1):.0f} s left",
              file=sys.stderr, flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("RERANK_DATA", "../shared/data"))
    parser.add_argument("--cache", default="bench/cache/preferences", help="MiniLM's preference cache")
    parser.add_argument("--answers", default="bench/cache/smollm-answers.sqlite", help="SmolLM2's answers")
    parser.add_argument("--store", required=True, help="model store holding (or receiving) the converted weights")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    load_start = os.getloadavg()
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data = load_dataset(Path(args.data) / "trec-dl-2019-passage")
    trec = TrecData(data.qrels, data.queries, data.corpus)
    qids = first_judged(data, args.queries)
    cheap_prefs = cached_preferences(data, CHEAP, args.depth, Path(args.cache),
                                     lambda: load_comparator(CHEAP, trec=trec), qids, quiet=True)
    smol = smollm(args.store, "prp", AnswerCache(Path(args.answers)))
    strong_prefs = strong_preferences(data, cheap_prefs, smol)

    def ndcg(qi: int, out) -> float:
        q = cheap_prefs[qi]
        return ndcg_at_k([r.id for r in out.results] + q.rest, data.qrels[q.qid], 10)

    cheap, strong = QueryReplay(cheap_prefs), QueryReplay(strong_prefs)
    plain_stages = [Stage(cheap, args.depth, CHEAP), Stage(strong, args.depth, STRONG)]
    requests = [(q.qid, [Candidate(d, str(i)) for i, d in enumerate(q.docids)]) for q in cheap_prefs]
    plain = {}
    for qi, (qid, cands) in enumerate(requests):
        out = rerank_cascade(qid, cands, plain_stages)
        plain[qi] = (ndcg(qi, out), out.stages[-1].comparisons)
    grades = {(q.qid, str(i)): float(max(data.qrels[q.qid].get(d, 0), 0)) for q in cheap_prefs
              for i, d in enumerate(q.docids)}
    rows = [run_alpha(reference, alpha, unit, args.splits, requests, plain, plain_stages, cheap_prefs, grades, ndcg)
            for reference in REFERENCES for alpha in ALPHAS for unit in UNITS]
    # how the two judges answer on their own (all ordered pairs of the top): first-slot share, agreement
    strong_a = float(np.mean([(q.P[~np.eye(len(q.docids), dtype=bool)] >= 0.5).mean() for q in strong_prefs]))
    agree = float(np.mean([((c.P >= 0.5) == (s.P >= 0.5))[~np.eye(len(c.docids), dtype=bool)].mean()
                           for c, s in zip(cheap_prefs, strong_prefs, strict=True)]))
    meta = {"command": "OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/escalation_smollm_bench.py "
                       + " ".join(sys.argv[1:]), "date": date, "dataset": data.name, "depth": args.depth,
            "strong_depth": args.depth, "cheap": CHEAP, "strong": STRONG,
            "strong_backend": f"torch int8 (the measured CPU default), {args.threads} torch thread(s)",
            "queries": len(qids), "qids": qids,
            "first_stage_ndcg10": first_stage_level(cheap_prefs, data.qrels),
            "plain_all_queries": {"ndcg10": float(np.mean([v[0] for v in plain.values()])),
                                  "strong_per_query": float(np.mean([v[1] for v in plain.values()]))},
            "strong_first_slot_share": strong_a, "cheap_strong_agreement_all_pairs": agree,
            "smollm_prompts_run": smol.asked, "smollm_prompts_from_cache": smol.reused,
            "smollm_model_seconds": smol.model_s, "split": f"{args.splits} splits: np.random.default_rng(split)"
            f".permutation of the queries, its first {len(qids) // 2} calibrate, the other "
            f"{len(qids) - len(qids) // 2} test",
            "load_average_start": load_start, "load_average": os.getloadavg(), "seconds": time.monotonic() - started,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    write_results(Path(args.out), meta, rows)
    with (Path(args.out) / "summary.md").open("a") as f:
        f.write(f"\nDate {date}; load average {load_start[0]:.1f} at the start, {meta['load_average'][0]:.1f} at "
                f"the end; SmolLM2 answered {smol.asked} prompts ({smol.model_s:.0f} s of model time), "
                f"{smol.reused} from the cache. SmolLM2's first-slot share over all ordered pairs {strong_a:.3f}; "
                f"MiniLM and SmolLM2 agree on {agree:.3f} of them. {meta['split']}.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
