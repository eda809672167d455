"""Ranking metrics, matching trec_eval (``ndcg_cut``, ``map``, ``recip_rank``, ``recall``, ``P``).

Per-query functions take a ranking (docids best first, distinct) and that query's qrels ``{docid: grade}``;
unjudged documents count as non-relevant. Binary measures call a document relevant when its grade is at least
``rel_level`` (TREC DL uses 2); nDCG uses the grades themselves as gains (negative grades count as 0).

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
    "average_precision",
    "evaluate",
    "kendall_tau",
    "ndcg",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
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


def _num_relevant(qrel: Mapping[str, int], rel_level: int) -> int:
    return sum(1 for g in qrel.values() if g >= rel_level)


def average_precision(ranking: Sequence[str], qrel: Mapping[str, int], rel_level: int = 1) -> float:
    """Average precision (trec_eval ``map`` for one query); 0 if the query has no relevant documents."""
    _check_distinct(ranking)
    num_rel = _num_relevant(qrel, rel_level)
    if num_rel == 0:
        return 0.0
    hits, total = 0, 0.0
    for i, d in enumerate(ranking, start=1):
        if qrel.get(d, 0) >= rel_level:
            hits += 1
            total += hits / i
    return total / num_rel


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


def recall_at_k(ranking: Sequence[str], qrel: Mapping[str, int], k: int, rel_level: int = 1) -> float:
    """Share of the query's relevant documents found in the top ``k`` (trec_eval ``recall_k``); 0 if none."""
    _check_distinct(ranking)
    _check_k(k)
    num_rel = _num_relevant(qrel, rel_level)
    if num_rel == 0:
        return 0.0
    return sum(1 for d in ranking[:k] if qrel.get(d, 0) >= rel_level) / num_rel


def precision_at_k(ranking: Sequence[str], qrel: Mapping[str, int], k: int, rel_level: int = 1) -> float:
    """Relevant documents in the top ``k`` divided by ``k`` (trec_eval ``P_k``)."""
    _check_distinct(ranking)
    _check_k(k)
    return sum(1 for d in ranking[:k] if qrel.get(d, 0) >= rel_level) / k


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


def _score(
    kind: str, k: int | None, ranking: Sequence[str], qrel: Mapping[str, int], rel_level: int
) -> float:
    if kind == "ndcg":
        return ndcg(ranking, qrel, k)
    if kind == "map":
        return average_precision(ranking, qrel, rel_level)
    if kind == "mrr":
        return reciprocal_rank(ranking, qrel, rel_level, k)
    assert k is not None
    if kind == "recall":
        return recall_at_k(ranking, qrel, k, rel_level)
    return precision_at_k(ranking, qrel, k, rel_level)


def evaluate(
    run_or_rankings: Mapping[str, Mapping[str, float]] | Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str] = DEFAULT_MEASURES,
    rel_level: int = 1,
    all_qrels: bool = False,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Evaluate a run ``{qid: {docid: score}}`` or rankings ``{qid: [docid, ...]}`` against qrels.

    Measures: ``ndcg@k`` (trec_eval ``ndcg_cut_k``), ``ndcg`` (no cutoff), ``map``, ``mrr`` / ``mrr@k``
    (``recip_rank``), ``recall@k``, ``p@k``; ``rel_level`` is the binary relevance threshold (nDCG ignores
    it). Runs are ordered as trec_eval does (score descending, ties by docid descending).

    Averaging follows trec_eval's default: only queries present in both the run and the qrels count (queries
    without judgments are skipped, so e.g. CISI is averaged over its judged queries). With ``all_qrels=True``
    (trec_eval ``-c``) every qrels query counts and one missing from the run scores 0 on every measure.

    Returns ``(means, per_query)``: ``means[measure]`` and ``per_query[qid][measure]``. Means are NaN when no
    query is evaluated.
    """
    parsed = [(m, *_parse_measure(m)) for m in measures]
    if len({m for m, _, _ in parsed}) != len(parsed):
        raise ValueError("duplicate measure names")
    per_query: dict[str, dict[str, float]] = {}
    for qid, entry in run_or_rankings.items():
        qrel = qrels.get(qid)
        if qrel is None:
            continue
        if isinstance(entry, Mapping):
            ranking: Sequence[str] = rank_docs(entry)
        elif isinstance(entry, str):
            raise TypeError(f"query {qid!r}: expected a ranking (sequence of docids) or a score mapping")
        else:
            ranking = entry
        per_query[qid] = {m: _score(kind, k, ranking, qrel, rel_level) for m, kind, k in parsed}
    if all_qrels:
        for qid in qrels:
            if qid not in per_query:
                per_query[qid] = {m: 0.0 for m, _, _ in parsed}
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
