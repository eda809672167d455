"""KwikSort: quicksort with random pivots over binarised preferences."""

from __future__ import annotations

import numpy as np

from ..comparisons import AggregateResult, Comparisons
from ._common import TIE_TOL, preference


def kwiksort(comparisons: Comparisons, *, seed: int = 0) -> AggregateResult:
    """Quicksort with uniformly random pivots over the binarised mean preference matrix.

    Source: KwikSort (Ailon, Charikar, Newman 2008, "Aggregating inconsistent information: ranking and
    clustering", JACM 55), used as a sorting-based sampler/aggregator in the PRP and Setwise papers;
    docs/references.md#kwiksort.

    Item i goes before pivot j when its mean preference ``P[i, j] > 0.5`` (both orders pooled); a tie
    (``P[i, j] == 0.5``) or an unseen pair is decided by index order (the lower index goes first), so
    the partition relation is fixed by the comparisons' content alone. The pivots come from
    ``np.random.default_rng(seed)`` drawn over segments kept in index order: the result is
    deterministic for a given ``seed`` and independent of the order of the rows.

    Returns ``order`` and ``scores = n - position``.
    """
    D, _ = preference(comparisons)
    n = D.shape[0]
    idx = np.arange(n)
    before = (D > TIE_TOL) | ((np.abs(D) <= TIE_TOL) & (idx[:, None] < idx[None, :]))
    rng = np.random.default_rng(seed)
    order: list[int] = []
    # stack of work items: an int is a placed pivot, an array is a segment still to sort
    stack: list[int | np.ndarray] = [idx]
    while stack:
        item = stack.pop()
        if isinstance(item, int):
            order.append(item)
            continue
        if len(item) <= 1:
            order.extend(int(x) for x in item)
            continue
        pivot = int(item[rng.integers(len(item))])
        rest = item[item != pivot]
        left_mask = before[rest, pivot]
        stack.append(rest[~left_mask])
        stack.append(pivot)
        stack.append(rest[left_mask])
    out = np.asarray(order, dtype=np.int64)
    scores = np.empty(n)
    scores[out] = n - np.arange(n, dtype=np.float64)
    return AggregateResult(scores=scores, order=out)
