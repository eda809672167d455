"""``refine``: adaptive neighbour refinement: compare the items adjacent in the current estimate.

Formulas and sources: docs/references.md#refine.
"""

from __future__ import annotations

import numpy as np

from ..aggregators.bt import bradley_terry
from ..comparisons import Comparisons
from ..prior import first_stage_prior
from ._common import check_common, cost_of
from .base import SamplerReport, SamplerRun

#: Prior weight tuned on the noise simulation (bench/engine_bench.py): 0.5 beat 0.25, 1 and 2 at 10%.
DEFAULT_PRIOR_WEIGHT = 0.5


def refine(
    n_items: int,
    budget: int,
    *,
    rng: np.random.Generator,
    both_orders: bool | None = None,
    top_n: int = 10,
    batch_size: int | None = None,
    distances: tuple[int, ...] = (1, 2, 3),
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
) -> SamplerRun:
    """Start from the first-stage order; each round compares disjoint pairs of items that sit 1..3 places
    apart in the current Bradley-Terry estimate (fit on the answers so far plus the first-stage prior of
    :mod:`..prior`), least-compared pairs first, then re-estimates.

    An odd-even-transposition / noisy-sorting design (cf. the PRP sliding window and Chatbot Arena's
    "compare where the estimate is uncertain"): comparisons go where the order is still open, and the
    first stage is kept as a weak prior instead of being thrown away, which is what makes small budgets
    work. Default one order per pair with a random slot; ``batch_size`` defaults to k // 2 (every item
    in about one comparison per round). No ordered pair is asked twice (a deterministic model would only
    repeat itself); a pair's second ask uses the other slot order, and when the near pairs are used up the
    distances widen. ``top_n`` is accepted for the common signature; the whole order is refined. Stops
    when the budget is spent or every ordered pair has been asked.
    """
    check_common(n_items, budget, top_n)
    both = bool(both_orders)
    if n_items < 2 or budget < 1:
        return SamplerReport(reason="nothing to compare" if n_items < 2 else "budget is 0")
    if any(d < 1 for d in distances):
        raise ValueError(f"distances must be >= 1, got {distances}")
    per_round = max(1, batch_size if batch_size is not None else n_items // 2)
    prior = first_stage_prior(n_items, prior_weight)
    asked: set[tuple[int, int]] = set()  # ordered pairs asked: a deterministic model only repeats itself
    a_seen: list[int] = []
    b_seen: list[int] = []
    p_seen: list[float] = []
    order = np.arange(n_items)
    used = 0
    reach = max(distances)
    while budget - used >= 1:
        room = min(per_round, budget - used)
        chosen: list[tuple[int, int]] = []
        while True:
            chosen = _pick_round(order, asked, distances, room, both, rng)
            if chosen or reach >= n_items - 1:
                break
            reach = min(n_items - 1, 2 * reach)  # the near pairs are used up: look further apart
            distances = tuple(range(1, reach + 1))
        if not chosen:
            break
        pairs = [q for x, y in chosen for q in ((x, y), (y, x))] if both else chosen
        pairs = pairs[: budget - used]
        p = yield pairs
        used += len(pairs)
        asked.update(pairs)
        a_seen += [x for x, _ in pairs]
        b_seen += [y for _, y in pairs]
        p_seen += [float(v) for v in np.asarray(p, dtype=np.float64)]
        seen = Comparisons(n_items, np.array(a_seen), np.array(b_seen), np.array(p_seen))
        order = bradley_terry(Comparisons.concat(n_items, [seen, prior])).ranking()
    return SamplerReport(reason="budget spent", order=order)


def _pick_round(
    order: np.ndarray,
    asked: set[tuple[int, int]],
    distances: tuple[int, ...],
    room: int,
    both: bool,
    rng: np.random.Generator,
) -> list[tuple[int, int]]:
    """Disjoint pairs of items ``d`` places apart in ``order``, least-asked first, each in an order not yet
    asked (one order: a random slot the first time, the other slot the second time)."""
    candidates = []
    for d in distances:
        for j in range(len(order) - d):
            x, y = int(order[j]), int(order[j + d])
            fresh = [q for q in ((x, y), (y, x)) if q not in asked]
            if (both and len(fresh) < 2) or not fresh:
                continue
            candidates.append((2 - len(fresh), d, float(rng.random()), fresh))
    candidates.sort(key=lambda c: c[:3])
    busy: set[int] = set()
    chosen: list[tuple[int, int]] = []
    cost = cost_of(both)
    for _, _, coin, fresh in candidates:
        x, y = fresh[0]
        if x in busy or y in busy:
            continue
        chosen.append(fresh[0] if len(fresh) == 1 or coin < 0.5 else fresh[1])
        busy.update((x, y))
        if len(chosen) * cost >= room:
            break
    return chosen
