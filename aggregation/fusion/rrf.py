"""Reciprocal rank fusion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..comparisons import AggregateResult
from ._common import check_rankings


def reciprocal_rank_fusion(rankings: Sequence[np.ndarray], n_items: int, *, k: int = 60) -> AggregateResult:
    """Reciprocal rank fusion: ``score(d) = sum over rankings of 1 / (k + rank(d))`` with 1-based ranks.

    Source: Cormack, Clarke and Büttcher (SIGIR 2009), "Reciprocal rank fusion outperforms Condorcet
    and individual rank learning methods", with their constant k = 60 (docs/references.md#reciprocal-rank-fusion).

    Rankings are arrays of item indices, best first, possibly partial; an item absent from a ranking
    gets no credit from it. Ties keep index order.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    checked = check_rankings(rankings, n_items)
    scores = np.zeros(n_items)
    for r in checked:
        scores[r] += 1.0 / (k + np.arange(1, len(r) + 1, dtype=np.float64))
    return AggregateResult(scores=scores)
