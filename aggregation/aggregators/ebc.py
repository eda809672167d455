"""Enhanced Borda Count (LLaMA-Berry)."""

from __future__ import annotations

import numpy as np

from ..comparisons import AggregateResult, Comparisons
from ..threads import small_solve_threads
from ._common import TIE_TOL, preference, soft_tiebreak


def transitive_closure(M: np.ndarray) -> np.ndarray:
    """Reachability closure of a boolean adjacency matrix: ``R[i, j]`` = a path of length >= 1 from i to j.

    Repeated squaring of ``I + M`` (paths of length <= 2^t) in single-precision BLAS until it stops
    changing, then one product with ``M``; entries are path counts, only their sign is read, so float32
    is exact enough. Comparison graphs have a small diameter, so a few products suffice: faster than
    Floyd-Warshall's n row updates and than a breadth-first search from every item
    (bench/results/aggregators_vs_peers.md).
    """
    edges = np.asarray(M, dtype=bool)
    n = edges.shape[0]
    reach = edges | np.eye(n, dtype=bool)
    while True:
        F = reach.astype(np.float32)
        longer = (F @ F) > 0
        if np.array_equal(longer, reach):
            break
        reach = longer
    return (reach.astype(np.float32) @ edges.astype(np.float32)) > 0


@small_solve_threads
def enhanced_borda(comparisons: Comparisons) -> AggregateResult:
    """Enhanced Borda Count: Borda count over the transitive closure of the binarised preferences.

    Source: LLaMA-Berry's Enhanced Borda Count (docs/references.md#enhanced-borda-count):
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
