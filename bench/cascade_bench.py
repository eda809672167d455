"""Cascade on TREC DL 2019 (mono/bi-encoder then pairwise, as duoT5 is used in its papers) against the
pairwise model alone on the BM25 top 20.

Configurations (nDCG@10 of the re-ranked list followed by the rest of the BM25 top 100, mean model calls
per query, over the 43 judged queries):
- ``oracle`` alone on the BM25 top 20, at 10% of k(k-1) and at all pairs (both orders);
- cascade: ``minilm`` (pointwise: 100 candidates scored once) on the BM25 top 100, then the oracle on its
  top 20, same two budgets.
The pairwise stage uses the best 10% configuration of the budgets benchmark for the noisy oracle (sampler
active, calibration bias, aggregator hodgerank) and the same calibration and aggregator for all pairs.

    python bench/cascade_bench.py --out bench/results
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.effectiveness_bench import DATA, ndcg
from rerank.evaluation import read_corpus, read_qrels, read_queries, read_run
from rerank.evaluation.trec import rank_docs
from rerank.pipeline import (
    Candidate,
    RankOptions,
    Stage,
    rerank,
    rerank_cascade,
)
from rerank.specs import TrecData, load_comparator

ORACLE = "oracle:noise=3,bias=1"
BUDGETS = {"10%": dict(sampler="active", budget=0.1), "all pairs": dict(sampler="all", both_orders=True)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--queries", type=int, default=None, help="first N judged queries (smoke)")
    args = parser.parse_args()
    corpus, queries, qrels = read_corpus(DATA / "corpus.jsonl"), read_queries(DATA / "queries.tsv"), read_qrels(
        DATA / "qrels.txt"
    )
    run = read_run(DATA / "run.bm25.top100.trec")
    ranked = {q: rank_docs(s)[:100] for q, s in run.items() if q in qrels}
    if args.queries:
        ranked = dict(list(ranked.items())[: args.queries])
    trec = TrecData(qrels, queries, corpus)
    oracle = load_comparator(ORACLE, trec=trec)
    minilm = load_comparator("minilm")
    rows = []
    bm25, _ = ndcg(ranked, qrels)
    for label, extra in BUDGETS.items():
        options = RankOptions(calibration="bias", aggregator="hodgerank", seed=0, **extra)
        for setup in ("oracle alone, BM25 top 20", "minilm top 100 -> oracle top 20"):
            rankings, calls, stage1, t0 = {}, [], [], time.perf_counter()
            for qid, docs in ranked.items():
                cands = [Candidate(d, corpus[d]) for d in docs]
                if setup.startswith("oracle"):
                    result = rerank(queries[qid], cands[:20], [oracle], options)
                    rankings[qid] = [r.id for r in result.results] + docs[20:]
                else:
                    stages = [Stage(minilm, 100, "minilm"), Stage(oracle, 20, ORACLE)]
                    result = rerank_cascade(queries[qid], cands, stages, options)
                    rankings[qid] = [r.id for r in result.results]
                    stage1.append(result.stages[0].comparisons)
                calls.append(result.usage.comparisons)
            score, _ = ndcg(rankings, qrels)
            rows.append({
                "budget": label, "setup": setup, "ndcg@10": score, "model_calls_per_query": float(np.mean(calls)),
                "stage1_calls_per_query": float(np.mean(stage1)) if stage1 else 0.0,
                "seconds": time.perf_counter() - t0,
            })
            print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"queries": len(ranked), "bm25_ndcg@10": bm25, "oracle": ORACLE, "rows": rows}
    (args.out / "cascade_dl19.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Cascade on TREC DL 2019 passage (`python bench/cascade_bench.py --out bench/results`)",
        "",
        f"{len(ranked)} judged queries; BM25 nDCG@10 {bm25:.4f}. Pairwise stage `{ORACLE}`: calibration bias,"
        " aggregator hodgerank; 10% = sampler active at 10% of 20 x 19 (38 comparisons); all pairs = both"
        " orders (380). Model calls count minilm's scored candidates (one each) plus the oracle's comparisons.",
        "",
        "| budget (pairwise stage) | setup | nDCG@10 | model calls / query (of which minilm) |",
        "| --- | --- | ---: | ---: |",
    ]
    lines += [
        f"| {r['budget']} | {r['setup']} | {r['ndcg@10']:.4f} | {r['model_calls_per_query']:.0f} "
        f"({r['stage1_calls_per_query']:.0f}) |"
        for r in rows
    ]
    (args.out / "cascade_dl19.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
