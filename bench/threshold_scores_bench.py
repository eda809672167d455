"""Scores a threshold can use (rerank/scores.py), on TREC DL 2019 passage: pooled over every judged query, the
AUC of the returned scores for judged-relevant vs judged non-relevant documents, against the AUC of minilm's
own cosine scores and of the former per-request min-max scores.

Each judged query's BM25 top 100 (``run.bm25.top100.trec``, in run order) is ranked through
``rerank.pipeline.run`` with minilm and the default options (``auto`` sampler: all pairs at k = 100,
symmetric calibration, HodgeRank, the first-stage prior), ``absolute_scores=True``. Relevant: qrels grade >= 2
(TREC DL's binary cut for passages) and, as a second reading, >= 1. Also reported: the pooled top-1 score of
each query for the documented threshold.

    .venv/bin/python bench/threshold_scores_bench.py --store ~/.cache/rerank/test-exports/minilm-... \
        --out bench/results/threshold_scores.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rerank.evaluation import read_corpus, read_qrels, read_queries, read_run  # noqa: E402
from rerank.evaluation.trec import rank_docs  # noqa: E402
from rerank.models import ModelStore, ensure_embedded, load_model  # noqa: E402
from rerank.pipeline import run  # noqa: E402
from rerank.request import Candidate, RerankRequest  # noqa: E402

DATA = Path(os.environ.get("RERANK_DATA", ROOT.parent / "shared" / "data")) / "trec-dl-2019-passage"


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U over average ranks: ties count one half)."""
    pos, neg = int(labels.sum()), int((~labels).sum())
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=ROOT / "bench" / "cache" / "models")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    store = ModelStore(args.store)
    ensure_embedded("minilm", store=store)
    model = load_model("minilm", store=store)
    qrels, queries, corpus = read_qrels(DATA / "qrels.txt"), read_queries(DATA / "queries.tsv"), read_corpus(
        DATA / "corpus.jsonl")
    bm25 = read_run(DATA / "run.bm25.top100.trec")
    qids = sorted(q for q in bm25 if q in qrels)[: args.max_queries]
    rows: dict[str, list[float]] = {"returned": [], "cosine": [], "minmax": [], "grade": []}
    tops: list[tuple[str, float, int]] = []
    t0 = time.monotonic()
    for qid in qids:
        docs = rank_docs(bm25[qid])[: args.depth]
        candidates = tuple(Candidate(d, corpus[d]) for d in docs)
        out = run(RerankRequest(queries[qid], candidates, ("minilm",), absolute_scores=True), {"minilm": model})
        assert out.absolute is not None and out.scores is not None
        cosine = model.score(queries[qid], [c.text for c in candidates])
        latent = out.scores
        minmax = (latent - latent.min()) / (latent.max() - latent.min())
        order = out.order
        assert all(out.absolute[order[i]] >= out.absolute[order[i + 1]] - 1e-12 for i in range(len(order) - 1))
        top = order[0]
        tops.append((qid, float(out.absolute[top]), qrels[qid].get(docs[top], -1)))
        for i, d in enumerate(docs):
            if d in qrels[qid]:
                rows["returned"].append(out.absolute[i])
                rows["cosine"].append(cosine[i])
                rows["minmax"].append(minmax[i])
                rows["grade"].append(qrels[qid][d])
    seconds = time.monotonic() - t0
    grade = np.asarray(rows["grade"])
    lines = [
        "# Scores a threshold can use: pooled AUC on TREC DL 2019 passage (minilm, defaults)",
        "",
        f"Command: `.venv/bin/python bench/threshold_scores_bench.py --store STORE --out {args.out}`  ",
        f"Queries: {len(qids)} judged, BM25 top {args.depth} each; judged documents pooled: {len(grade)}; "
        f"{seconds:.0f} s; load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the end.",
        "",
        "| scores | AUC, relevant = grade >= 2 | AUC, relevant = grade >= 1 |",
        "| --- | --- | --- |",
    ]
    for name, label in (("returned", "returned (rerank/scores.py)"), ("cosine", "minilm cosine"),
                        ("minmax", "former: latent min-max per request")):
        values = np.asarray(rows[name])
        lines.append(f"| {label} | {auc(values, grade >= 2):.4f} | {auc(values, grade >= 1):.4f} |")
    top = np.asarray([t[1] for t in tops])
    lines += ["", f"Top-1 returned score per query: min {top.min():.3f}, median {np.median(top):.3f}, "
              f"max {top.max():.3f}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
