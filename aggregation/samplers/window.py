"""``window`` (structured) and ``skip`` (skip-window) sampling, Gienapp et al. 2022.

Formulas and sources: docs/references.md#random-window-and-skip-window.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import check_common, cost_of, dedupe, orient
from .base import SamplerReport, SamplerRun


def dilated_pairs(n_items: int, lam: int, m: int | None) -> list[tuple[int, int]]:
    """Distinct unordered pairs ``{i, (i + j*lam) mod k}`` for j = 1..m (all j when ``m`` is None).

    Ordered by j, then by i (first-stage top first); self-pairs and repeats are dropped.
    """
    k = n_items
    if k < 2:
        return []
    top = k - 1 if m is None else min(m, k - 1)  # j and j + k give the same partner
    return dedupe((i, (i + j * lam) % k) for j in range(1, top + 1) for i in range(k))


def _check_m(m: int | None) -> None:
    if m is not None and (isinstance(m, bool) or int(m) != m or m < 0):
        raise ValueError(f"window size m must be a whole number >= 0, got {m!r}")


def _run(
    pairs: list[tuple[int, int]], budget: int, both: bool, rng: np.random.Generator, what: str
) -> SamplerRun:
    asked = orient(pairs, budget, both, rng)
    if asked:
        yield asked
    if len(asked) < len(pairs) * cost_of(both):
        return SamplerReport(reason=f"budget of {budget} comparisons spent")
    return SamplerReport(
        reason=f"{what}: all {len(pairs)} distinct pairs compared ({len(asked)} comparisons)"
    )


def window(
    n_items: int,
    budget: int,
    *,
    rng: np.random.Generator,
    both_orders: bool | None = None,
    top_n: int = 10,
    m: int | None = None,
) -> SamplerRun:
    """Structured window: item i is compared with ``(i + j) mod k``, j = 1..m, in one round.

    Default ``both_orders=False`` (one order per pair, random slot). Without ``m`` the window grows
    j = 1, 2, ... over all i until the budget is spent (the last j only partly, top items first);
    with ``m`` it stops at j = m. Only distinct unordered pairs are asked.
    """
    check_common(n_items, budget, top_n)
    _check_m(m)
    both = False if both_orders is None else bool(both_orders)
    pairs = dilated_pairs(n_items, 1, None if m is None else int(m))
    return (yield from _run(pairs, budget, both, rng, "window"))


def skip_window(
    n_items: int,
    budget: int,
    *,
    rng: np.random.Generator,
    both_orders: bool | None = None,
    top_n: int = 10,
    lam: int | None = None,
    m: int | None = None,
) -> SamplerRun:
    """Skip-window: item i is compared with ``(i + j*lam) mod k``, j = 1..m, in one round.

    Default ``both_orders=False`` (one order per pair, random slot). Default dilation: the smallest
    ``lam >= 2`` with ``gcd(lam, k) = 1`` (2 for odd k), so that j = 1..k-1 reaches every pair without
    repeats. Without ``m``, j grows until the budget is spent or no new distinct pair is left: with an
    explicit ``lam`` where ``gcd(lam, k) > 1`` only the pairs whose distance is a multiple of the gcd
    exist, and the sampler stops there (the report says how many pairs it used). ``lam=1`` is the plain
    window.
    """
    check_common(n_items, budget, top_n)
    _check_m(m)
    if lam is None:
        lam = next((x for x in range(2, n_items + 3) if math.gcd(x, n_items) == 1), 1)
    if isinstance(lam, bool) or int(lam) != lam or lam < 1:
        raise ValueError(f"dilation lam must be a whole number >= 1, got {lam!r}")
    both = False if both_orders is None else bool(both_orders)
    pairs = dilated_pairs(n_items, int(lam), None if m is None else int(m))
    return (yield from _run(pairs, budget, both, rng, f"skip-window lam={lam}"))
