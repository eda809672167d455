"""Bradley–Terry maximum a-posteriori estimate on soft outcomes (dense Newton)."""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from ..comparisons import AggregateResult, Comparisons
from ..threads import small_solve_threads
from ._common import win_matrix

#: Default L2 prior strength (penalty ``alpha / 2 * ||theta||^2``, i.e. a N(0, 1/alpha) prior).
DEFAULT_ALPHA = 0.1

#: Scores are rounded to this many decimals (far below the solver tolerance) so exact ties stay ties.
_SNAP_DECIMALS = 12


def _sigmoid(X: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-X))`` in one new array, computed in place: as accurate as ``scipy.special.expit``
    (relative error ~1 ulp for either sign; exp overflows to inf, giving exactly 0) and several times faster
    on the k x k matrices here (expit took most of a fit: bench/results/bt_vs_choix.md)."""
    S = np.negative(X)
    with np.errstate(over="ignore"):
        np.exp(S, out=S)
    S += 1.0
    return np.reciprocal(S, out=S)


def _evaluate(theta: np.ndarray, W: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    """Penalised negative log-likelihood at ``theta``, and ``S = sigmoid(theta_i - theta_j)`` for the next step.

    ``-log sigmoid(x) = log(1 + exp(-x))``: read off S where S cannot underflow, else computed directly.
    """
    X = np.subtract.outer(theta, theta)
    S = _sigmoid(X)
    # log S overwrites X, which is not needed any more
    softplus = np.negative(np.log(S, out=X), out=X) if float(X.min()) > -700.0 else np.logaddexp(0.0, -X)
    return float(np.vdot(W, softplus)) + 0.5 * alpha * float(theta @ theta), S


def _cholesky(H: np.ndarray) -> np.ndarray:
    """Upper Cholesky factor by LAPACK potrf directly (scipy.linalg's checks cost more than the factorisation
    at these sizes); H is overwritten."""
    factor, info = lapack.dpotrf(H.T, overwrite_a=True, clean=False)  # H.T: the same, Fortran order
    if info != 0:
        raise np.linalg.LinAlgError(f"Bradley-Terry: the Hessian is not positive definite (potrf info {info})")
    return factor


def _solve_factored(factor: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``H x = rhs`` given H's upper Cholesky factor."""
    x, info = lapack.dpotrs(factor, rhs)
    if info != 0:
        raise np.linalg.LinAlgError(f"Bradley-Terry: potrs failed (info {info})")
    return x


def _shifted_hessian(S: np.ndarray, N: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, float]:
    """``N * S`` and the penalised negative Hessian ``H`` plus ``beta 11^T``, with beta.

    ``H 1 = alpha 1``, so adding ``beta 11^T`` changes only the (unused) direction of 1 and keeps the system
    well conditioned for any alpha; solutions projected onto mean zero are unchanged.
    """
    n = len(S)
    NS = N * S
    V = NS - NS * S  # N S (1 - S)
    degree = V.sum(axis=1) + alpha
    beta = float(degree.mean()) / n
    H = beta - V
    H.flat[:: n + 1] += degree
    return NS, H, beta


@small_solve_threads
def bradley_terry(
    comparisons: Comparisons,
    *,
    alpha: float = DEFAULT_ALPHA,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> AggregateResult:
    """Bradley–Terry strengths by penalised maximum likelihood on soft outcomes.

    Model (Bradley and Terry 1952; Zermelo 1929): ``P(i > j) = sigmoid(theta_i - theta_j)``. A row
    (a, b, p, w) contributes ``w * (p log P(a > b) + (1 - p) log P(b > a))``, so with the soft-win
    matrix ``W`` the objective is ``-sum_ij W[i, j] log sigmoid(theta_i - theta_j) + alpha/2 ||theta||^2``
    (docs/references.md#bradley-terry: maximum likelihood on soft outcomes, with an L2 prior so that sparse
    or disconnected comparison graphs still have a finite, unique optimum). The penalised objective is
    strictly convex; it is minimised by Newton's method with Armijo backtracking on the dense sufficient
    statistics until the Newton step is below ``tol``. The optimum has mean zero exactly (the
    likelihood gradient sums to zero), so ``scores = theta`` are already centred; an item never
    compared gets theta = 0.

    Equivalent to ``choix.opt_pairwise(n, data, alpha=alpha / 2)`` for binary data (choix penalises
    ``alpha * ||theta||^2``).

    ``stderr``: square roots of the diagonal of the inverse penalised negative Hessian (the Laplace
    posterior covariance) *of the centred scores*, ``C H^-1 C`` with ``C = I - 11^T / n``. The level of
    theta is not identified by the data: the prior alone fixes it and the raw ``H^-1`` carries a
    constant ``1 / (alpha n)`` on every diagonal entry that never shrinks with more data; the scores
    returned are centred, so their covariance is projected accordingly.

    Default ``alpha = 0.1``: a N(0, 10) prior, standard deviation ~3.2 on the log-strength, wide enough
    to cover the whole range of pairwise-model probabilities (logit 0.99 ~ 4.6) without shrinking them.
    One comparison contributes at most 1/4 to the Fisher information, so the prior is worth about 0.4
    comparisons per item: negligible once an item has a handful of comparisons (all pairs of 50 items
    give 98 per item), yet it keeps separable data (p in {0, 1}, a perfect comparator) and disconnected
    graphs finite and the Newton system well conditioned. (choix's default, 1e-6 in its own
    convention, lets separable data drift to |theta| ~ log(1/alpha) ~ 14 and is ill conditioned;
    Gienapp et al. used a regularisation of 0.2.)
    """
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive finite number, got {alpha}")
    W, N = win_matrix(comparisons)
    n = W.shape[0]
    if n == 0:
        return AggregateResult(scores=np.zeros(0), stderr=np.zeros(0))
    theta = np.zeros(n)
    f, S = _evaluate(theta, W, alpha)
    wins = W.sum(axis=1)
    factor: np.ndarray | None = None  # Cholesky factor of the shifted H at the current theta, once made
    beta = 0.0
    for _ in range(max_iter):
        NS, H, beta = _shifted_hessian(S, N, alpha)
        g = alpha * theta - wins + NS.sum(axis=1)  # = alpha theta - sum_j (W - N S)
        g -= g.mean()  # the exact gradient is orthogonal to 1 at mean-zero theta; drop rounding drift
        # Cholesky (the shifted H is positive definite): the fastest dense solve, and no pivoting
        factor = _cholesky(H)
        step = _solve_factored(factor, -g)
        step -= step.mean()
        slope = float(g @ step)
        if slope >= 0 or float(np.abs(step).max()) < tol:
            break
        # Armijo backtracking; the slack absorbs rounding in f once the decrease is below float precision
        slack = 1e-12 * max(1.0, abs(f))
        t = 1.0
        cand = theta + step
        fc, Sc = _evaluate(cand, W, alpha)
        while fc > f + 1e-4 * t * slope + slack and t > 1e-12:
            t *= 0.5
            cand = theta + t * step
            fc, Sc = _evaluate(cand, W, alpha)
        if fc > f + slack:  # no descent left at float precision: theta is optimal
            break
        theta, f, S = cand, fc, Sc
        factor = None  # H moved with theta
        if float(np.abs(t * step).max()) < tol:
            break
    # Exact ties (e.g. items that were never compared, whose optimum is exactly 0, or items in
    # symmetric positions) must not be broken by rounding noise of the solver: snap theta to a grid
    # far below the convergence tolerance, so that AggregateResult.ranking() keeps them in index order.
    # The snap moves theta by < 1e-12, so the Hessian for the standard errors is taken at the last S
    # (items never compared have no terms in it).
    theta = np.round(theta, _SNAP_DECIMALS) + 0.0
    theta[N.sum(axis=1) == 0] = 0.0
    if factor is None:  # the loop ended on a step taken: factor H at the final theta (else reuse the last)
        _, H, beta = _shifted_hessian(S, N, alpha)
        factor = _cholesky(H)
    # (H + beta 11^T)^-1 = C H^-1 C + 11^T / (n (alpha + beta n)); the inverse from the Cholesky factor
    # (LAPACK potri) costs a third of a general inverse, and only its diagonal is read.
    inverse, info = lapack.dpotri(factor, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"Bradley-Terry covariance: potri failed (info {info})")
    cov_diag = np.diag(inverse) - 1.0 / (n * (alpha + beta * n))
    stderr = np.sqrt(np.clip(cov_diag, 0.0, None))
    return AggregateResult(scores=theta, stderr=stderr)
