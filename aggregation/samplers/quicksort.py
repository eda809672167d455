"""``quicksort``: partial KwikSort with random pivots, one round per recursion depth.

Formulas and sources: docs/references.md#sorting-samplers.
"""

from __future__ import annotations

import numpy as np

from ._common import Oracle, check_common
from .base import SamplerReport, SamplerRun


def quicksort(
    n_items: int,
    budget: int,
    *,
    rng: np.random.Generator,
    both_orders: bool | None = None,
    top_n: int = 10,
) -> SamplerRun:
    """Partial quicksort (KwikSort): a random pivot per part, every other item compared with it.

    All parts of one recursion depth go into one round; only parts that reach into the top ``top_n``
    positions are split further, so the top ``top_n`` come out sorted. Decisions: p >= 0.5 (both
    orders: mean of p(a, b) and 1 - p(b, a)). Default ``both_orders=False`` (one order, random slot).
    When the budget cannot pay a whole round the last round is partial (top parts first, items in
    first-stage order); a part left half-compared is ordered winners, pivot, uncompared, losers.
    ``SamplerReport.order``: the resulting order; unsplit parts keep first-stage order.
    """
    check_common(n_items, budget, top_n)
    both = False if both_orders is None else bool(both_orders)
    oracle = Oracle(budget, both, rng)
    # parts in rank order: (items in first-stage order, may be split further)
    parts: list[tuple[list[int], bool]] = [(list(range(n_items)), True)] if n_items else []
    reason = f"top {min(top_n, n_items)} sorted"
    while True:
        targets: list[int] = []
        pos = 0
        for idx, (items, open_) in enumerate(parts):
            if open_ and len(items) >= 2 and pos < top_n:
                targets.append(idx)
            pos += len(items)
        if not targets:
            break
        pivots = {idx: parts[idx][0][int(rng.integers(len(parts[idx][0])))] for idx in targets}
        wanted = [(pivots[idx], x) for idx in targets for x in parts[idx][0] if x != pivots[idx]]
        yield from oracle.ask(wanted)
        complete = True
        new_parts: list[tuple[list[int], bool]] = []
        for idx, (items, open_) in enumerate(parts):
            if idx not in pivots:
                new_parts.append((items, open_))
                continue
            pv = pivots[idx]
            others = [x for x in items if x != pv]
            wins = [x for x in others if oracle.known(x, pv) and oracle.beats(x, pv)]
            losses = [x for x in others if oracle.known(x, pv) and not oracle.beats(x, pv)]
            unknown = [x for x in others if not oracle.known(x, pv)]
            complete = complete and not unknown
            for chunk, open_chunk in ((wins, True), ([pv], False), (unknown, False), (losses, True)):
                if chunk:
                    new_parts.append((chunk, open_chunk and len(chunk) > 1))
        parts = new_parts
        if not complete:
            reason = f"budget of {budget} comparisons ran out"
            break
    order = np.array([x for items, _ in parts for x in items], dtype=np.int64)
    return SamplerReport(reason=reason, order=order)
