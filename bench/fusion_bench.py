"""Peer-rank fusion (PRD) against each judge and equal-weight Borda: three oracles of noise 1, 3 and 6 on DL19.

    RERANK_HOME=bench/cache OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/fusion_bench.py --out bench/results/fusion

TREC DL 2019 passage, BM25 top 50, the 43 judged queries. Each judge is ``oracle:noise=N,bias=1,seed=S`` (its own
noise seed, so the three judges err independently); its answers to all ordered pairs come from the preference
cache of ``rerank bench budgets`` (computed once when missing). Each ranking goes through
``rerank.pipeline.rerank`` with ``RankOptions()`` defaults at the budget (all pairs, 10%): one judge alone, and the
three fused with ``borda`` (equal weights) and ``peer`` (weights by agreement, iterated). nDCG@10 is the mean over
queries of the mean over seeds; the weights are their mean over queries and seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from rerank.bench.budgets import ReplayComparator, cached_preferences, first_stage_level, load_dataset
from rerank.evaluation import ndcg_at_k
from rerank.pipeline import Candidate, RankOptions, rerank
from rerank.specs import TrecData, load_comparator

JUDGES = ("oracle:noise=1,bias=1,seed=1", "oracle:noise=3,bias=1,seed=2", "oracle:noise=6,bias=1,seed=3")
DEPTH = 50
BUDGETS: tuple[float | None, ...] = (None, 0.1)


def run(data, prefs: dict[str, list], budget: float | None, seeds: int) -> dict:
    qids = [q.qid for q in prefs[JUDGES[0]]]
    alone = {j: np.zeros((len(qids), seeds)) for j in JUDGES}
    fused = {f: np.zeros((len(qids), seeds)) for f in ("borda", "peer")}
    weights = np.zeros((len(qids), seeds, len(JUDGES)))
    for qi in range(len(qids)):
        queries = [prefs[j][qi] for j in JUDGES]
        q = queries[0]
        assert all(other.docids == q.docids for other in queries)
        cands = [Candidate(d, str(i)) for i, d in enumerate(q.docids)]
        models = [ReplayComparator(x.P) for x in queries]

        def ndcg(out, q=q) -> float:
            return ndcg_at_k([r.id for r in out.results] + q.rest, data.qrels[q.qid], 10)

        for seed in range(seeds):
            for j, model in zip(JUDGES, models, strict=True):
                alone[j][qi, seed] = ndcg(rerank("q", cands, [model], RankOptions(budget=budget, seed=seed)))
            for f in fused:
                out = rerank("q", cands, models, RankOptions(budget=budget, seed=seed, fusion=f))
                fused[f][qi, seed] = ndcg(out)
                if f == "peer":
                    weights[qi, seed] = out.fusion_weights
    return {"budget": budget, "seeds": seeds,
            "alone": {j: float(v.mean()) for j, v in alone.items()},
            "fused": {f: float(v.mean()) for f, v in fused.items()},
            "weights": dict(zip(JUDGES, map(float, weights.mean(axis=(0, 1))), strict=True)),
            "weights_min": dict(zip(JUDGES, map(float, weights.min(axis=(0, 1))), strict=True)),
            "weights_max": dict(zip(JUDGES, map(float, weights.max(axis=(0, 1))), strict=True))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("RERANK_DATA", "../shared/data"))
    parser.add_argument("--cache", default="bench/cache/preferences")
    parser.add_argument("--seeds", type=int, default=3, help="sampler seeds at the 10%% budget (all pairs: 1)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    data = load_dataset(Path(args.data) / "trec-dl-2019-passage")
    trec = TrecData(data.qrels, data.queries, data.corpus)
    started = time.monotonic()
    prefs = {j: cached_preferences(data, j, DEPTH, Path(args.cache), lambda j=j: load_comparator(j, trec=trec),
                                   data.judged_qids, quiet=True) for j in JUDGES}
    rows = []
    for budget in BUDGETS:
        rows.append(run(data, prefs, budget, 1 if budget is None else args.seeds))
        print(json.dumps(rows[-1]), file=sys.stderr)
    meta = {"command": "RERANK_HOME=bench/cache OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/fusion_bench.py "
                       f"--out {args.out}", "dataset": data.name, "depth": DEPTH, "queries": len(data.judged_qids),
            "first_stage_ndcg10": first_stage_level(prefs[JUDGES[0]], data.qrels),
            "load_average": os.getloadavg(), "seconds": time.monotonic() - started,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=2))
    lines = ["# Peer-rank fusion (PRD) of three oracles on DL19", "", f"Command: `{meta['command']}`", "",
             f"DL19 passage, BM25 top {DEPTH}, {meta['queries']} judged queries; first stage nDCG@10 "
             f"{meta['first_stage_ndcg10']:.4f}; load average {meta['load_average'][0]:.1f}.", "",
             "| budget | judge / fusion | peer weight (mean, min-max over queries) | nDCG@10 |",
             "| --- | --- | --- | --- |"]
    for r in rows:
        b = "all pairs" if r["budget"] is None else f"{r['budget']:.0%} ({r['seeds']} seeds)"
        for j in JUDGES:
            lines.append(f"| {b} | `{j}` alone | {r['weights'][j]:.3f} ({r['weights_min'][j]:.2f}-"
                         f"{r['weights_max'][j]:.2f}) | {r['alone'][j]:.4f} |")
        lines.append(f"| {b} | equal-weight `borda` | 1/3 each | {r['fused']['borda']:.4f} |")
        lines.append(f"| {b} | `peer` (weighted Borda) | as above | **{r['fused']['peer']:.4f}** |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
