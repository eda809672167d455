"""Rank fusion: combine several rankings (of several models, prompts or orders) into one.

Every method takes ``(rankings, n_items, *, options)`` where each ranking is an array of item indices
best first, possibly partial (an item absent from a ranking gets no credit from it), and returns an
:class:`AggregateResult` whose ``ranking()`` is a permutation of ``range(n_items)``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..comparisons import AggregateResult
from .borda import borda_fusion
from .kemeny import kemeny_cost, kemeny_fusion, pairwise_counts
from .rrf import reciprocal_rank_fusion

FUSIONS: dict[str, Callable[..., AggregateResult]] = {
    "borda": borda_fusion,
    "rrf": reciprocal_rank_fusion,
    "kemeny": kemeny_fusion,
}

__all__ = [
    "FUSIONS",
    "borda_fusion",
    "kemeny_cost",
    "kemeny_fusion",
    "pairwise_counts",
    "reciprocal_rank_fusion",
]
