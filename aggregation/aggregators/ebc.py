"""Enhanced Borda Count (LLaMA-Berry)."""

from __future__ import annotations

import numpy as np

from ..comparisons import AggregateResult, Comparisons
from ._common import TIE_TOL, preference, soft_tiebreak


def transitive_closure(M: np.ndarray) -> np.ndarray:
    """Reachability closure of a boolean adjacency matrix (Floyd–Warshall, one vectorised update per k)."""
    R = np.array(M, dtype=bool, copy=True)
    for k in range(R.shape[0]):
        rows = np.flatnonzero(R[:, k])
        if len(rows):
            R[rows] |= R[k]
    return R


def enhanced_borda(comparisons: Comparisons) -> AggregateResult:
    """Enhanced Borda Count: Borda count over the transitive closure of the binarised preferences.

    Source: LLaMA-Berry's Enhanced Borda Count (REFERENCES.md, "Aggregation into a ranking"):
    binarise ``M[i, j] = [P(i, j) >= 0.5]`` on the mean preference of every *seen* pair (both orders
    pooled, :meth:`Comparisons.preference_matrix`; a tie sets both directions), take the transitive
    closure (Floyd–Warshall) and Borda-count it; ties are broken by the pairwise probabilities.

    Score = (items i reaches in the closure) - (items that reach i), plus the soft Borda tie-break
    ``sum_j (P[i, j] - 1/2) / n`` which lies in (-1/2, 1/2) and so only orders items with equal counts.
    On a complete comparison graph this orders exactly like the plain closure out-degree; the
    symmetric form gives an item that was never compared the neutral score 0.
    """
    D, seen = preference(comparisons)
    n = D.shape[0]
    M = seen & (D >= -TIE_TOL)
    np.fill_diagonal(M, False)
    R = transitive_closure(M)
    np.fill_diagonal(R, False)
    count = R.sum(axis=1).astype(np.float64) - R.sum(axis=0)
    if n == 0:
        return AggregateResult(scores=np.zeros(0))
    return AggregateResult(scores=count + soft_tiebreak(D, seen))
