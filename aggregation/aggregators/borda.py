"""Additive (Borda) aggregation of pairwise comparisons."""

from __future__ import annotations

from ..comparisons import AggregateResult, Comparisons
from ._common import win_matrix


def borda(comparisons: Comparisons) -> AggregateResult:
    """Additive aggregation: each comparison (a, b, p) adds ``w p`` to ``s_a`` and ``w (1 - p)`` to ``s_b``.

    Source: the "Additive" aggregation of Gienapp, Fröbe, Hagen and Potthast (ICTIR 2022, "Sparse
    Pairwise Re-ranking"); with both orders of every pair it equals duoT5's Sym-Sum (Pradeep,
    Nogueira, Lin 2021). See docs/references.md#borda.

    ``s_i`` is the row sum of the weighted soft-win matrix, i.e. the expected number of wins of i.
    An item that was never compared scores 0 (it collected no points).
    """
    W, _ = win_matrix(comparisons)
    return AggregateResult(scores=W.sum(axis=1))
