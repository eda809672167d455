"""Bradley–Terry maximum a-posteriori estimate on soft outcomes (dense Newton)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.special import expit

from ..comparisons import AggregateResult, Comparisons
from ._common import win_matrix

#: Default L2 prior strength (penalty ``alpha / 2 * ||theta||^2``, i.e. a N(0, 1/alpha) prior).
DEFAULT_ALPHA = 0.1

#: Scores are rounded to this many decimals (far below the solver tolerance) so exact ties stay ties.
_SNAP_DECIMALS = 12


def _objective(theta: np.ndarray, W: np.ndarray, alpha: float) -> float:
    X = theta[:, None] - theta[None, :]
    return float((W * np.logaddexp(0.0, -X)).sum() + 0.5 * alpha * theta @ theta)


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
    (REFERENCES.md: "fit pi by maximum likelihood on soft outcomes, with an L2 prior so that sparse or
    disconnected comparison graphs still have a finite, unique optimum"). The penalised objective is
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
    f = _objective(theta, W, alpha)
    diag = np.arange(n)
    for _ in range(max_iter):
        S = expit(theta[:, None] - theta[None, :])
        g = alpha * theta - (W - N * S).sum(axis=1)
        g -= g.mean()  # the exact gradient is orthogonal to 1 at mean-zero theta; drop rounding drift
        V = N * S * (1.0 - S)
        H = -V
        H[diag, diag] += V.sum(axis=1) + alpha
        # H 1 = alpha 1, so adding beta * 11^T changes only the (unused) direction of 1 and keeps the
        # system well conditioned for any alpha; the step stays in the mean-zero subspace.
        beta = float(H[diag, diag].mean()) / n
        step = scipy.linalg.solve(H + beta, -g, assume_a="pos", check_finite=False)
        step -= step.mean()
        slope = float(g @ step)
        if slope >= 0 or float(np.abs(step).max()) < tol:
            break
        # Armijo backtracking; the slack absorbs rounding in f once the decrease is below float precision
        slack = 1e-12 * max(1.0, abs(f))
        t = 1.0
        cand = theta + step
        fc = _objective(cand, W, alpha)
        while fc > f + 1e-4 * t * slope + slack and t > 1e-12:
            t *= 0.5
            cand = theta + t * step
            fc = _objective(cand, W, alpha)
        if fc > f + slack:  # no descent left at float precision: theta is optimal
            break
        theta, f = cand, fc
        if float(np.abs(t * step).max()) < tol:
            break
    # Exact ties (e.g. items that were never compared, whose optimum is exactly 0, or items in
    # symmetric positions) must not be broken by rounding noise of the solver: snap theta to a grid
    # far below the convergence tolerance, so that AggregateResult.ranking() keeps them in index order.
    theta = np.round(theta, _SNAP_DECIMALS) + 0.0
    theta[N.sum(axis=1) == 0] = 0.0
    S = expit(theta[:, None] - theta[None, :])
    V = N * S * (1.0 - S)
    H = -V
    H[diag, diag] += V.sum(axis=1) + alpha
    beta = float(H[diag, diag].mean()) / n
    # (H + beta 11^T)^-1 = C H^-1 C + 11^T / (n (alpha + beta n))
    cov_diag = np.diag(scipy.linalg.inv(H + beta, check_finite=False)) - 1.0 / (n * (alpha + beta * n))
    stderr = np.sqrt(np.clip(cov_diag, 0.0, None))
    return AggregateResult(scores=theta, stderr=stderr)
