"""``sliding``: PRP sliding window (bubble passes) with window 2, step 1.

Formulas and sources: docs/references.md#sorting-samplers.
"""

from __future__ import annotations

import numpy as np

from ._common import Oracle, check_common
from .base import SamplerReport, SamplerRun


def sliding(
    n_items: int,
    budget: int,
    *,
    rng: np.random.Generator,
    both_orders: bool | None = None,
    top_n: int = 10,
) -> SamplerRun:
    """``top_n`` bubble passes from the bottom of the first-stage list to the top.

    Pass t (0-based) compares positions (i, i+1) for i = k-2 down to t and swaps when the lower item
    wins, so after pass t position t holds its best item. Decisions: p >= 0.5 (both orders: mean of
    p(a, b) and 1 - p(b, a)); a pair already decided is not asked again. Default ``both_orders=False``
    (one order, random slot). The passes are pipelined: pass t works two positions below pass t-1,
    which touches disjoint positions and gives exactly the sequential result in about k + 2*top_n
    rounds. When the budget runs out the run stops with the current order.
    """
    check_common(n_items, budget, top_n)
    both = False if both_orders is None else bool(both_orders)
    k = n_items
    oracle = Oracle(budget, both, rng)
    order = list(range(k))
    passes = min(top_n, k - 1) if k >= 2 else 0
    reason = f"{passes} passes done"
    for r in range(k - 2 + passes):
        # pass t is at position i = k - 2 - (r - 2t) in round r
        steps = [k - 2 - (r - 2 * t) for t in range(passes) if t <= k - 2 - (r - 2 * t) <= k - 2]
        yield from oracle.ask((order[i], order[i + 1]) for i in steps)
        complete = True
        for i in steps:
            if not oracle.known(order[i], order[i + 1]):
                complete = False
                continue
            if oracle.beats(order[i + 1], order[i]):
                order[i], order[i + 1] = order[i + 1], order[i]
        if not complete:
            reason = f"budget of {budget} comparisons ran out"
            break
    return SamplerReport(reason=reason, order=np.array(order, dtype=np.int64))
