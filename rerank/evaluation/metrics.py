"""Ranking metrics: the few we compute ourselves, and :func:`evaluate` of a whole run through trec_eval.

Whole runs are evaluated by trec_eval's own code through pytrec_eval (:mod:`rerank.evaluation.measures`).
What stays here is what the library lacks: nDCG of one ranking at a time (``rerank bench budgets`` scores ~10^5
rankings per run; a pytrec_eval call per ranking is 2.2x slower, bench/results/metrics_cpu.md), MRR with a cutoff
(trec_eval's ``recip_rank`` has none) and Kendall's tau. Per-ranking functions take a ranking (docids best first,
distinct) and that query's qrels ``{docid: grade}``; unjudged documents count as non-relevant. nDCG uses the
grades as gains (negative grades count as 0); RR calls a document relevant when its grade is at least
``rel_level`` (TREC DL uses 2).

Formulas and sources: docs/references.md#evaluation-measures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .trec import rank_docs

__all__ = [
    "DEFAULT_MEASURES",
    "evaluate",
    "kendall_tau",
    "ndcg",
    "ndcg_at_k",
    "reciprocal_rank",
]

DEFAULT_MEASURES: tuple[str, ...] = ("ndcg@10", "map", "mrr", "recall@100")


def _check_distinct(ranking: Sequence[str]) -> None:
    if len(set(ranking)) != len(ranking):
        raise ValueError("ranking contains duplicate documents")


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"cutoff k must be >= 1, got {k}")


def _dcg(gains: Iterable[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)


def ndcg(ranking: Sequence[str], qrel: Mapping[str, int], k: int | None = None) -> float:
    """nDCG of the top ``k`` (all if None); ideal DCG from all judged documents of the query; 0 if no gain."""
    _check_distinct(ranking)
    top = ranking if k is None else ranking[:k]
    ideal = sorted((g for g in qrel.values() if g > 0), reverse=True)
    if k is not None:
        ideal = ideal[:k]
    idcg = _dcg(ideal)
    if idcg == 0.0:
        return 0.0
    return _dcg(qrel.get(d, 0) for d in top) / idcg


def ndcg_at_k(ranking: Sequence[str], qrel: Mapping[str, int], k: int) -> float:
    """nDCG@k exactly as trec_eval's ``ndcg_cut_k`` (gains = grades, log2(rank + 1) discount)."""
    _check_k(k)
    return ndcg(ranking, qrel, k)


def reciprocal_rank(
    ranking: Sequence[str], qrel: Mapping[str, int], rel_level: int = 1, k: int | None = None
) -> float:
    """1 / rank of the first relevant document within the top ``k`` (all if None), else 0."""
    _check_distinct(ranking)
    if k is not None:
        _check_k(k)
    for i, d in enumerate(ranking if k is None else ranking[:k], start=1):
        if qrel.get(d, 0) >= rel_level:
            return 1.0 / i
    return 0.0


_MEASURE = re.compile(r"^(ndcg|map|mrr|recall|p)(?:@(\d+))?$")


def _parse_measure(name: str) -> tuple[str, int | None]:
    m = _MEASURE.match(name.strip().lower())
    if m is None:
        raise ValueError(f"unknown measure {name!r}; use ndcg, ndcg@k, map, mrr, mrr@k, recall@k or p@k")
    kind, cut = m.group(1), m.group(2)
    k = None if cut is None else int(cut)
    if k is not None and k < 1:
        raise ValueError(f"cutoff must be >= 1 in measure {name!r}")
    if kind in ("recall", "p") and k is None:
        raise ValueError(f"measure {name!r} needs a cutoff, e.g. {kind}@100")
    if kind == "map" and k is not None:
        raise ValueError("map takes no cutoff")
    return kind, k


_TREC_NAMES = {"ndcg": "ndcg", "map": "map", "mrr": "recip_rank", "recall": "recall", "p": "P"}


def _trec_key(kind: str, k: int | None) -> str:
    """trec_eval's result name of one of our measures (``ndcg@10`` -> ``ndcg_cut_10``)."""
    base = "ndcg_cut" if kind == "ndcg" and k is not None else _TREC_NAMES[kind]
    return base if k is None else f"{base}_{k}"


def evaluate(
    run_or_rankings: Mapping[str, Mapping[str, float]] | Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str] = DEFAULT_MEASURES,
    rel_level: int = 1,
    all_qrels: bool = False,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Evaluate a run ``{qid: {docid: score}}`` or rankings ``{qid: [docid, ...]}`` against qrels, with
    trec_eval's code (pytrec_eval; MRR@k, which trec_eval lacks, with :func:`reciprocal_rank`).

    Measures: ``ndcg@k`` (trec_eval ``ndcg_cut_k``), ``ndcg`` (no cutoff), ``map``, ``mrr`` (``recip_rank``)
    / ``mrr@k``, ``recall@k``, ``p@k``; ``rel_level`` is the binary relevance threshold (nDCG ignores it).
    Runs are ordered as trec_eval does (score descending, ties by docid descending).

    Averaging follows trec_eval's default: only queries present in both the run and the qrels count (queries
    without judgments are skipped, so e.g. CISI is averaged over its judged queries). With ``all_qrels=True``
    (trec_eval ``-c``) every qrels query counts and one missing from the run scores 0 on every measure.

    Returns ``(means, per_query)``: ``means[measure]`` and ``per_query[qid][measure]``. Means are NaN when no
    query is evaluated.
    """
    from .measures import evaluate_run  # pytrec_eval (the eval extra) only where a whole run is evaluated

    parsed = [(m, *_parse_measure(m)) for m in measures]
    if len({m for m, _, _ in parsed}) != len(parsed):
        raise ValueError("duplicate measure names")
    rankings: dict[str, Sequence[str]] = {}
    for qid, entry in run_or_rankings.items():
        if isinstance(entry, str) or not isinstance(entry, Mapping | Sequence):
            raise TypeError(f"query {qid!r}: expected a ranking (sequence of docids) or a score mapping")
        rankings[qid] = rank_docs(entry) if isinstance(entry, Mapping) else entry
        _check_distinct(rankings[qid])
    evaluated = [q for q in rankings if q in qrels] + ([q for q in qrels if q not in rankings] if all_qrels else [])
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in evaluated}
    library = [(m, _trec_key(kind, k)) for m, kind, k in parsed if not (kind == "mrr" and k is not None)]
    if library:
        run = {qid: {d: float(len(r) - i) for i, d in enumerate(r)} for qid, r in rankings.items()}
        result = evaluate_run(run, qrels, [key for _, key in library], rel_level=rel_level, complete=all_qrels)
        for qid, row in result.per_query.items():
            per_query[qid].update({m: row[key] for m, key in library})
    for qid, row in per_query.items():
        row.update({m: reciprocal_rank(rankings.get(qid, []), qrels[qid], rel_level, k)
                    for m, kind, k in parsed if kind == "mrr" and k is not None})
        per_query[qid] = {m: row[m] for m, _, _ in parsed}
    means = {
        m: (math.fsum(v[m] for v in per_query.values()) / len(per_query) if per_query else math.nan)
        for m, _, _ in parsed
    }
    return means, per_query


def kendall_tau(ranking_a: Sequence[str], ranking_b: Sequence[str]) -> float:
    """Kendall's tau between two orderings of the same distinct items: (concordant - discordant) / pairs.

    Raises ValueError if the item sets differ or contain duplicates; NaN for fewer than 2 items.
    Vectorised O(n^2) in blocks (memory O(n * block)).
    """
    n = len(ranking_a)
    pos_b = {item: i for i, item in enumerate(ranking_b)}
    if len(pos_b) != len(ranking_b) or len(set(ranking_a)) != n:
        raise ValueError("rankings contain duplicate items")
    if n != len(pos_b) or any(item not in pos_b for item in ranking_a):
        raise ValueError("rankings must contain the same items")
    if n < 2:
        return math.nan
    # Positions in b of the items in a's order: tau = 1 - 2 * inversions / pairs.
    p = np.fromiter((pos_b[item] for item in ranking_a), dtype=np.int64, count=n)
    inversions = 0
    block = max(1, 4_000_000 // n)
    for start in range(0, n, block):
        rows = p[start : start + block, None]
        later = np.arange(n)[None, :] > np.arange(start, min(start + block, n))[:, None]
        inversions += int(np.count_nonzero((rows > p[None, :]) & later))
    pairs = n * (n - 1) // 2
    return 1.0 - 2.0 * inversions / pairs
