"""``heapsort``: PRP / Setwise heapsort top-n selection with pairwise decisions.

Formulas and sources: docs/references.md#sorting-samplers.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from ._common import Oracle, check_common, run_parallel
from .base import SamplerReport, SamplerRun


def _sift_down(
    heap: list[int], pos: int, size: int, oracle: Oracle
) -> Generator[tuple[int, int], None, None]:
    """Sift ``heap[pos]`` down a max-heap of ``size``; yields each pair it needs decided."""
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        child = left
        if left + 1 < size:
            pair = (heap[left], heap[left + 1])
            if not oracle.known(*pair):
                yield pair
            if oracle.beats(heap[left + 1], heap[left]):
                child = left + 1
        pair = (heap[pos], heap[child])
        if not oracle.known(*pair):
            yield pair
        if not oracle.beats(heap[child], heap[pos]):
            return
        heap[pos], heap[child] = heap[child], heap[pos]
        pos = child


def heapsort(
    n_items: int,
    budget: int,
    *,
    rng: np.random.Generator,
    both_orders: bool | None = None,
    top_n: int = 10,
) -> SamplerRun:
    """Build a max-heap over the items (first-stage top at the root) and pop the best ``top_n``.

    Each comparison is decided by p >= 0.5 (both orders: the mean of p(a, b) and 1 - p(b, a)); a pair is
    never asked twice. Default ``both_orders=False`` (one order, random slot). Heapify runs level by level,
    bottom up: the sift-downs of one level work on disjoint subtrees, so their comparisons share rounds.
    Each sift-down step asks children-vs-children, then winner-vs-parent. Popping is sequential.
    ``SamplerReport.order``: the popped items best first, then the rest in first-stage order. When the
    budget runs out, the run stops with that partial order (the items popped so far lead it).
    """
    check_common(n_items, budget, top_n)
    both = False if both_orders is None else bool(both_orders)
    k = n_items
    top = min(top_n, k)
    oracle = Oracle(budget, both, rng)
    heap = list(range(k))
    popped: list[int] = []

    def report(reason: str) -> SamplerReport:
        rest = sorted(set(range(k)) - set(popped))
        return SamplerReport(reason=reason, order=np.array(popped + rest, dtype=np.int64))

    if top == 0:
        return report("nothing to select (top_n = 0)")
    size = k
    last_parent = size // 2 - 1
    if last_parent >= 0:
        for level in range(int(np.log2(last_parent + 1)), -1, -1):
            lo, hi = 2**level - 1, min(2 ** (level + 1) - 2, last_parent)
            procs = [_sift_down(heap, pos, size, oracle) for pos in range(lo, hi + 1)]
            ok = yield from run_parallel(procs, oracle)
            if not ok:
                return report(f"budget of {budget} comparisons ran out while building the heap")
    while len(popped) < top:
        popped.append(heap[0])
        size -= 1
        heap[0] = heap[size]
        if len(popped) == top or size <= 1:
            continue
        ok = yield from run_parallel([_sift_down(heap, 0, size, oracle)], oracle)
        if not ok:
            return report(f"budget of {budget} comparisons ran out after {len(popped)} of top {top}")
    return report(f"top {top} selected")
