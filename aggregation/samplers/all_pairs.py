"""``all``: every pair, nearest first-stage neighbours first when the budget is short."""

from __future__ import annotations

import numpy as np

from ._common import check_common, orient
from .base import SamplerReport, SamplerRun


def proximity_pairs(n_items: int) -> list[tuple[int, int]]:
    """All unordered pairs ``(i, i + d)`` by first-stage distance d = 1, 2, ..., then by i."""
    return [(i, i + d) for d in range(1, n_items) for i in range(n_items - d)]


def all_pairs(
    n_items: int,
    budget: int,
    *,
    rng: np.random.Generator,
    both_orders: bool | None = None,
    top_n: int = 10,
) -> SamplerRun:
    """All pairs in one round. Default ``both_orders=True``: k(k-1) comparisons.

    With a smaller budget the pairs are taken by first-stage proximity (distance 1 first, then 2, ...;
    top items first within a distance) until the budget is spent; in both orders a single call left over
    goes to one order of the next pair. One order (``both_orders=False``) uses a random slot per pair.
    """
    check_common(n_items, budget, top_n)
    both = True if both_orders is None else bool(both_orders)
    pairs = orient(proximity_pairs(n_items), budget, both, rng)
    if pairs:
        yield pairs
    total = n_items * (n_items - 1) // (1 if both else 2)
    reason = "all pairs compared" if len(pairs) >= total else f"budget of {budget} comparisons spent"
    return SamplerReport(reason=reason)
