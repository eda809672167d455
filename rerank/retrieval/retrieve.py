"""Retrieve-then-rerank: first-stage candidates from an :class:`Index`, re-ranked by the pairwise pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rerank.pipeline import Candidate, RankOptions, RerankResult, rerank

from .index import Hit, Index


@dataclass(frozen=True)
class RetrieveAndRerankResult:
    hits: list[Hit]  # first stage, best first
    reranked: RerankResult  # ``results[i].index`` points into ``hits``


def retrieve_and_rerank(
    index: Index,
    query: str,
    models: Sequence[Any],
    options: RankOptions | None = None,
    *,
    k: int = 100,
    top_n: int | None = None,
    deadline: float | None = None,
) -> RetrieveAndRerankResult:
    """Retrieve the top ``k`` of ``query`` from ``index`` and re-rank them with ``models`` (pairwise
    comparators) through :func:`rerank.pipeline.rerank`; raises ``RequestError`` / ``RetrievalError``."""
    hits = index.search([query], k)[0]
    candidates = [Candidate(h.docid, h.text, h.score) for h in hits]
    result = rerank(query, candidates, models, options or RankOptions(), top_n=top_n, deadline=deadline)
    return RetrieveAndRerankResult(hits, result)
