"""Rank fusion: combine several rankings (of several models, prompts or orders) into one.

Every method takes ``(rankings, n_items, *, options)`` where each ranking is an array of item indices
best first, possibly partial (an item absent from a ranking gets no credit from it), and returns an
:class:`AggregateResult` whose ``ranking()`` is a permutation of ``range(n_items)`` (``peer`` also returns the
weight it found for each ranking: :class:`WeightedFusion`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..comparisons import AggregateResult
from .borda import borda_fusion
from .kemeny import kemeny_cost, kemeny_fusion, pairwise_counts
from .peer_rank import WeightedFusion, agreement_matrix, peer_rank_fusion, peer_rank_weights
from .rrf import reciprocal_rank_fusion

FUSIONS: dict[str, Callable[..., AggregateResult]] = {
    "borda": borda_fusion,
    "rrf": reciprocal_rank_fusion,
    "kemeny": kemeny_fusion,
    "peer": peer_rank_fusion,
}

__all__ = [
    "FUSIONS",
    "WeightedFusion",
    "agreement_matrix",
    "borda_fusion",
    "kemeny_cost",
    "kemeny_fusion",
    "pairwise_counts",
    "peer_rank_fusion",
    "peer_rank_weights",
    "reciprocal_rank_fusion",
]
