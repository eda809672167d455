"""PageRank over the comparison graph (edges from loser to winner)."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ..comparisons import AggregateResult, Comparisons
from ..threads import small_solve_threads
from ._common import win_matrix

_SNAP_DECIMALS = 14  # the mass is ~1/n; the LU's rounding is ~1e-17


@small_solve_threads
def pagerank(comparisons: Comparisons, *, damping: float = 0.85) -> AggregateResult:
    """Rank by the stationary mass of a random walk that moves from losers to winners.

    Source: PageRank aggregation as evaluated by Gienapp et al. (ICTIR 2022) for pairwise re-ranking;
    each comparison adds an edge from loser to winner with weight p (docs/references.md#pagerank).
    A row (a, b, p, w) adds an edge b -> a of weight ``w * p`` and a -> b of weight ``w * (1 - p)``, and
    each item keeps a self-loop with its own soft wins: the walker at i picks one of i's comparisons and
    moves to its winner, so it stays at i with the probability that i won (the "random walker" ranking,
    Callaghan, Mucha, Porter 2007). Without the self-loops the out-weights are normalised away and a
    two-item graph gets equal mass whatever p says. The walk follows out-edges proportionally with
    probability ``damping`` (0.85, Brin and Page 1998) and teleports uniformly otherwise; the mass of
    dangling items (never compared) is spread uniformly. The stationary vector is the solution of one dense
    linear system, ``r (I - damping P) = (1 - damping) / n`` with ``P`` the row-stochastic walk (dangling
    rows uniform), which is nonsingular for damping < 1: the fixed point power iteration converges to,
    at the cost of one LU factorisation instead of ~150 matrix-vector products.

    ``scores`` = stationary mass (sums to 1). An item never compared receives only the uniform
    teleport/dangling share.
    """
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping must lie in [0, 1), got {damping}")
    W, _ = win_matrix(comparisons)
    n = W.shape[0]
    if n == 0:
        return AggregateResult(scores=np.zeros(0))
    E = W.T + np.diag(W.sum(axis=1))  # E[j, i] = how much i beat j; E[i, i] = i's own wins
    out = E.sum(axis=1)
    dangling = out <= 0
    T = np.zeros_like(E)
    np.divide(E, out[:, None], out=T, where=~dangling[:, None])
    P = T
    P[dangling] = 1.0 / n
    system = (np.eye(n) - damping * P).T  # I - damping P^T, in the Fortran order LAPACK takes without a copy
    # LAPACK gesv directly: scipy.linalg.solve's checks cost more than the solve at these sizes
    _, _, r, info = scipy.linalg.lapack.dgesv(system, np.full(n, (1.0 - damping) / n), overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"PageRank: gesv failed (info {info})")
    r /= r.sum()
    # as in bt: exact ties (items in symmetric positions) must not be broken by the solver's rounding
    r = np.round(r, _SNAP_DECIMALS) + 0.0
    return AggregateResult(scores=r)
