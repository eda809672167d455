"""HodgeRank: ridge least squares on the comparisons' log-odds. Formulas and sources: docs/references.md#hodgerank."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse
from scipy.sparse.csgraph import connected_components

from ..comparisons import AggregateResult, Comparisons
from ..threads import small_solve_threads

#: Default ridge (penalty ``alpha * ||s||^2``): worth one comparison per item, small next to the data.
DEFAULT_ALPHA = 1.0
#: Default clip of each comparison's log-odds: p of 0 or 1 counts as logit +-8 (p ~ 0.9997).
DEFAULT_MAX_LOGIT = 8.0

_SNAP_DECIMALS = 12  # as in bt: exact ties stay ties


def _components(n: int, a: np.ndarray, b: np.ndarray, A: np.ndarray) -> int:
    """Connected components of the comparison graph (1 without a search when every pair was compared)."""
    if np.count_nonzero(A) == n * (n - 1):
        return 1
    graph = scipy.sparse.csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return int(connected_components(graph, directed=False)[0])


@small_solve_threads
def hodgerank(
    comparisons: Comparisons,
    *,
    alpha: float = DEFAULT_ALPHA,
    max_logit: float = DEFAULT_MAX_LOGIT,
) -> AggregateResult:
    """Scores ``s`` minimising ``sum_rows w (s_a - s_b - y)^2 + alpha ||s||^2``, with ``y = logit p``
    clipped to ``+-max_logit``.

    Jiang, Lim, Yao and Ye (2011), "Statistical ranking and combinatorial Hodge theory", Math.
    Programming 127: the least-squares projection of the pairwise flow ``y`` onto gradient flows
    (HodgeRank), here on log-odds with a ridge so that sparse or disconnected graphs have a unique,
    finite answer. Where Bradley-Terry reads a soft answer as a fraction of a win (p near 0 or 1 all
    count about the same), HodgeRank keeps its margin: it is the maximum-likelihood estimate when a
    comparator answers ``logit p = s_a - s_b + e`` with Gaussian ``e`` (a graded-model logit with noise;
    the benchmark oracle is built so), and it solves one linear system instead of a Newton loop.

    The solution is ``(L + alpha I)^-1 d`` with ``L`` the weighted graph Laplacian and ``d`` the net
    flow per item; it has mean zero (``1^T L = 1^T d = 0``). An item never compared gets 0.
    ``stderr``: square roots of the diagonal of ``sigma^2 C (L + alpha I)^-1 C`` (``C`` centres the
    scores), ``sigma^2`` the weighted residual mean square over ``sum(weight) - items + components``
    degrees of freedom (a weight counts model calls, so a row of weight 2 is two identical rows, for the
    standard errors as for the scores), or 1 when the rows leave none.
    """
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive finite number, got {alpha}")
    if not (np.isfinite(max_logit) and max_logit > 0):
        raise ValueError(f"max_logit must be a positive finite number, got {max_logit}")
    n = comparisons.n_items
    if n == 0:
        return AggregateResult(scores=np.zeros(0), stderr=np.zeros(0))
    a, b, p, w = comparisons.a, comparisons.b, comparisons.p, comparisons.weight
    # canonical row order, so that the sums do not depend on how rows arrive: by ordered pair, which is a
    # plain integer sort when no ordered pair repeats, else by all columns
    key = a * n + b
    repeats = int(np.bincount(key, minlength=n * n).max(initial=0)) > 1
    idx = np.lexsort((w, p, b, a)) if repeats else np.argsort(key)
    a, b, p, w = a[idx], b[idx], p[idx], w[idx]
    tiny = 1e-300
    y = np.clip(np.log(np.maximum(p, tiny)) - np.log(np.maximum(1.0 - p, tiny)), -max_logit, max_logit)
    A = np.bincount(a * n + b, weights=w, minlength=n * n).reshape(n, n).astype(np.float64)
    A = A + A.T  # weighted comparisons per pair
    M = -A
    M[np.diag_indices(n)] += A.sum(axis=1) + alpha
    flow = (np.bincount(a, weights=w * y, minlength=n) - np.bincount(b, weights=w * y, minlength=n)).astype(np.float64)
    # M 1 = alpha 1: adding beta 11^T (as in bt) keeps the factorisation well conditioned for any alpha without
    # changing the solution (flow sums to zero) and gives the centred covariance without cancellation:
    # C M^-1 C = (M + beta 11^T)^-1 - 11^T / (n (alpha + beta n)).
    beta = float(np.mean(np.diag(M))) / n
    factor = scipy.linalg.cho_factor(M + beta, check_finite=False)
    scores = scipy.linalg.cho_solve(factor, flow, check_finite=False)
    scores = np.round(scores - scores.mean(), _SNAP_DECIMALS) + 0.0
    rows = len(p)
    dof = float(np.sum(w)) - (n - _components(n, a, b, A)) if rows else 0.0
    if dof > 0:
        resid = scores[a] - scores[b] - y
        sigma2 = float(np.sum(w * resid**2) / dof)
    else:
        sigma2 = 1.0
    inverse, info = scipy.linalg.lapack.dpotri(factor[0], lower=factor[1])  # the inverse from the factor
    if info != 0:
        raise np.linalg.LinAlgError(f"HodgeRank covariance: potri failed (info {info})")
    inv_diag = np.diag(inverse)
    centred_var = inv_diag - 1.0 / (n * (alpha + beta * n))
    stderr = np.sqrt(np.maximum(centred_var, 0.0) * sigma2)
    return AggregateResult(scores=scores, stderr=stderr)
