"""Greedy ordering of Cohen, Schapire and Singer (1999)."""

from __future__ import annotations

import numpy as np

from ..comparisons import AggregateResult, Comparisons
from ._common import win_matrix


def greedy(comparisons: Comparisons) -> AggregateResult:
    """Greedy order by potential (Cohen, Schapire, Singer 1999, "Learning to Order Things", JAIR 10).

    On the weighted soft-win matrix ``W`` (``W[v, u]`` = weighted P(v > u) mass): start with the
    potential ``pi(v) = sum_u W[v, u] - sum_u W[u, v]``; repeatedly emit the remaining item ``t`` of
    largest potential and update ``pi(u) += W[t, u] - W[u, t]`` for the remaining ``u``
    (docs/references.md#greedy). Ties (up to float rounding) go to the lowest index.

    Returns ``order`` and ``scores = n - position``.
    """
    W, _ = win_matrix(comparisons)
    n = W.shape[0]
    F = W - W.T
    pi = F.sum(axis=1)
    tol = 1e-12 * max(1.0, float(W.sum()))
    remaining = np.ones(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    for pos in range(n):
        cand = np.where(remaining, pi, -np.inf)
        best = cand.max()
        t = int(np.flatnonzero(cand >= best - tol)[0])
        order[pos] = t
        remaining[t] = False
        pi += F[t]
    scores = np.empty(n)
    scores[order] = n - np.arange(n, dtype=np.float64)
    return AggregateResult(scores=scores, order=order)
