"""``random``: uniformly random distinct unordered pairs (Gienapp et al. 2022).

Formulas and sources: docs/references.md#random-window-and-skip-window.
"""

from __future__ import annotations

import numpy as np

from ._common import check_common, cost_of, orient
from .base import SamplerReport, SamplerRun


def random_pairs(
    n_items: int,
    budget: int,
    *,
    rng: np.random.Generator,
    both_orders: bool | None = None,
    top_n: int = 10,
) -> SamplerRun:
    """Distinct unordered pairs drawn uniformly without replacement, in one round.

    Default ``both_orders=False``: one order per pair with a random slot assignment (a fair coin), so
    position bias averages out over the pairs; ``budget`` pairs (at most k(k-1)/2). With both orders,
    ``budget // 2`` pairs, and an odd call left over goes to one random-slot order of one more pair.
    """
    check_common(n_items, budget, top_n)
    both = False if both_orders is None else bool(both_orders)
    n_pairs = n_items * (n_items - 1) // 2
    take = min(n_pairs, -(-budget // cost_of(both)))  # the ceiling leaves room for a half pair
    if take <= 0:
        return SamplerReport(reason="no pairs to compare")
    rows, cols = np.triu_indices(n_items, 1)
    pick = rng.choice(n_pairs, size=take, replace=False)
    pairs = orient(list(zip(rows[pick].tolist(), cols[pick].tolist(), strict=True)), budget, both, rng)
    yield pairs
    total = n_pairs * cost_of(both)
    reason = "all pairs compared" if len(pairs) >= total else f"budget of {budget} comparisons spent"
    return SamplerReport(reason=reason)
