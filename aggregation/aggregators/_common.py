"""Shared, order-independent matrix statistics for the aggregators (private helpers).

Every aggregator builds dense matrices from the comparison rows first and then works on them only, so
its result depends on the *content* of the comparisons and not on the order the rows arrive in. Float
addition is not associative, so the rows are sorted canonically (by ``a, b, p, weight``) before they
are summed: two permutations of the same rows give bit-identical matrices.
"""

from __future__ import annotations

import numpy as np

from ..comparisons import Comparisons

#: Two preferences closer than this (on the antisymmetric scale ``2P - 1``) count as a tie.
TIE_TOL = 1e-12


def win_matrix(comparisons: Comparisons) -> tuple[np.ndarray, np.ndarray]:
    """``W[i, j]`` = weighted soft wins of i over j, ``N = W + W.T``; bit-identical under row permutation.

    Same definition as :meth:`Comparisons.win_matrix`, but the rows are summed in a canonical order
    (and with ``np.bincount``, which is much faster than ``np.add.at``); without repeated ordered pairs
    each cell of a bincount has one term, so no sort is needed.
    """
    n = comparisons.n_items
    a, b, p, w = comparisons.a, comparisons.b, comparisons.p, comparisons.weight
    if len(p) == 0:
        W = np.zeros((n, n))
        return W, W.copy()
    size = n * n
    if int(np.bincount(a * n + b, minlength=size).max()) > 1:
        idx = np.lexsort((w, p, b, a))
        a, b, p, w = a[idx], b[idx], p[idx], w[idx]
    W = np.bincount(a * n + b, weights=w * p, minlength=size)
    W += np.bincount(b * n + a, weights=w * (1.0 - p), minlength=size)
    W = W.reshape(n, n)
    return W, W + W.T


def preference(comparisons: Comparisons) -> tuple[np.ndarray, np.ndarray]:
    """Mean preference per pair on the antisymmetric scale, and which pairs were seen.

    Returns ``D, seen`` with ``D[i, j] = 2 P[i, j] - 1 = (W[i, j] - W[j, i]) / N[i, j]`` for seen pairs
    (0 for unseen ones), where ``P`` is :meth:`Comparisons.preference_matrix`. ``D`` is exactly
    antisymmetric in floating point, so "i beats j" (``D[i, j] > TIE_TOL``) and "j beats i" can never
    both hold and a tie is a tie from both sides.
    """
    W, N = win_matrix(comparisons)
    seen = N > 0
    D = np.zeros_like(W)
    np.divide(W - W.T, N, out=D, where=seen)
    return D, seen


def soft_tiebreak(D: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Soft Borda on mean preferences, scaled into (-1/2, 1/2): ``sum_j (P[i, j] - 1/2) / n``.

    Added to an integer-valued score it breaks ties in favour of the item that the pairwise
    probabilities favour, without ever overturning a difference of 1 in the integer score.
    """
    n = D.shape[0]
    if n == 0:
        return np.zeros(0)
    return np.where(seen, D, 0.0).sum(axis=1) / (2.0 * n)
