"""``active``: adaptive pair selection on a Bradley-Terry estimate (Chatbot Arena / K-Sort Arena style).

Formulas and sources: docs/references.md#active.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components
from scipy.special import ndtr, ndtri

from ..comparisons import Comparisons, sigmoid
from ._common import check_common, cost_of, orient
from .base import Pair, SamplerReport, SamplerRun

#: L2 prior of the sampler's own fits (a N(0, 100) prior on the log-strengths): weak enough that sharp
#: comparators (p near 0 or 1) are not squeezed into a misfit that no number of comparisons removes.
ACTIVE_ALPHA = 0.01
#: Stand-in variance when the comparisons leave no residual degrees of freedom (a forest).
_NO_INFO = 1e6


def _hessian(comps: Comparisons, scores: np.ndarray, alpha: float) -> np.ndarray:
    """Penalised negative Hessian of the Bradley-Terry log-likelihood at ``scores``."""
    _, N = comps.win_matrix()
    S = sigmoid(scores[:, None] - scores[None, :])
    V = N * S * (1.0 - S)
    H = -V
    H[np.diag_indices(len(scores))] += V.sum(axis=1) + alpha
    return H


def _residual_dof(comps: Comparisons) -> int:
    """Comparisons minus the free parameters (items minus connected components)."""
    n = comps.n_items
    adj = np.zeros((n, n), dtype=bool)
    adj[comps.a, comps.b] = True
    return len(comps) - (n - connected_components(adj, directed=False)[0])


def _centre(C: np.ndarray) -> np.ndarray:
    """Covariance of the centred scores (the level of the scores is fixed by the prior alone)."""
    return C - C.mean(axis=0, keepdims=True) - C.mean(axis=1, keepdims=True) + C.mean()


def score_covariance(
    comps: Comparisons,
    scores: np.ndarray,
    alpha: float,
    method: str,
    stderr: np.ndarray | None = None,
    prior_dof: float = 10.0,
) -> np.ndarray:
    """Covariance of the Bradley-Terry scores used by :func:`active`.

    ``"quasi"``: quasi-likelihood, the Laplace covariance ``H^-1`` times the dispersion
    ``phi = (chi2 + prior_dof) / (dof + prior_dof)``, with ``chi2 = sum w (p - q)^2 / (q (1 - q))`` the
    Pearson statistic of the fit: a soft answer is not a coin flip, so a deterministic model that
    answers consistently with the fit (phi << 1) settles quickly, a noisy or inconsistent one (phi ~ 1
    and above) does not. ``prior_dof`` pulls phi towards 1 (coin flips) while the residual degrees of
    freedom are few: hard 0/1 answers on a sparse graph are nearly separable and fit too well.
    ``"sandwich"``: the robust ``H^-1 M H^-1`` (Chatbot Arena), with ``M`` the sum of the per-comparison
    score outer products and an HC1 factor ``rows / dof``.
    ``"model"``: the fit's own ``stderr`` on the diagonal (one soft answer = one Bernoulli trial; with
    one call per ordered pair this hardly ever separates adjacent items at 95%).
    Without residual degrees of freedom (quasi, sandwich) every variance is ``1e6``.
    """
    n = comps.n_items
    if method == "model":
        if stderr is None:
            var = np.diag(np.linalg.inv(_hessian(comps, scores, alpha)))
        else:
            var = np.asarray(stderr, dtype=np.float64) ** 2
        return np.diag(np.where(np.isfinite(var), var, _NO_INFO))
    dof = _residual_dof(comps)
    if dof <= 0:
        return np.eye(n) * _NO_INFO
    Hi = np.linalg.inv(_hessian(comps, scores, alpha))
    q = np.clip(sigmoid(scores[comps.a] - scores[comps.b]), 1e-9, 1.0 - 1e-9)
    resid = comps.p - q
    if method == "quasi":
        chi2 = float(np.sum(comps.weight * resid**2 / (q * (1.0 - q))))
        phi = (chi2 + prior_dof) / (dof + prior_dof)
        return _centre(Hi * phi)
    r = comps.weight * resid
    G = np.zeros((len(r), n))
    rows = np.arange(len(r))
    G[rows, comps.a] = r
    G[rows, comps.b] = -r
    return _centre(Hi @ (G.T @ G) @ Hi * (len(comps) / dof))


def active(
    n_items: int,
    budget: int,
    *,
    rng: np.random.Generator,
    both_orders: bool | None = None,
    top_n: int = 10,
    batch_size: int | None = None,
    confidence: float = 0.95,
    alpha: float = ACTIVE_ALPHA,
    variance: str = "quasi",
    prior_dof: float = 10.0,
) -> SamplerRun:
    """Adaptive sampling focused on the top ``top_n``, with an early stop at ``confidence``.

    1. A ring of first-stage neighbours (i, i+1 mod k): k pairs, fewer (top first) if the budget is short.
    2. Rounds of ``batch_size`` pairs (default ``max(8, k // 4)``): fit Bradley-Terry
       (``aggregators.bt.bradley_terry`` with prior ``alpha``, default 0.01) to everything seen, and take
       the score covariance C of ``variance`` (see :func:`score_covariance`; default ``"quasi"`` with
       ``prior_dof=10``).
       Stop early when every adjacent pair among the estimated top ``top_n + 1`` is separated:
       ``s_i - s_(i+1) > z * sqrt(v)`` with ``v = C_ii + C_jj - 2 C_ij`` (= var_i + var_j for
       ``"model"``) and z the two-sided normal quantile of ``confidence`` (1.96 at 0.95).
       Otherwise each pair (i, j) not yet asked in every order gets the utility
       ``(sqrt(v/(n+1)) - sqrt(v/(n+2))) * 2 Phi(-|s_i - s_j| / sqrt(v)) * max(r_i, r_j)``:
       the Chatbot Arena uncertainty reduction (n = calls on the pair so far, shifted by one so unseen
       pairs are finite), times the chance that the pair's order is unsettled, times the chance
       ``r = Phi((s - t) / sqrt(C_ii))`` that an item lies above the score t between estimated ranks
       ``top_n + 1`` and ``top_n + 2``. The batch is drawn without replacement with probability
       proportional to the utility (Gumbel top-k on ``rng``).

    Default ``both_orders=False``: one order per call with a random slot; a pair is asked again only in
    its other order (a deterministic model would repeat its answer). Stops when the budget is spent or
    every ordered pair was asked. ``SamplerReport.order`` stays None: aggregate the comparisons.
    """
    check_common(n_items, budget, top_n)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    if variance not in ("quasi", "sandwich", "model"):
        raise ValueError(f"variance must be 'quasi', 'sandwich' or 'model', got {variance!r}")
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive finite number, got {alpha}")
    if not (np.isfinite(prior_dof) and prior_dof >= 0):
        raise ValueError(f"prior_dof must be a finite number >= 0, got {prior_dof}")
    both = False if both_orders is None else bool(both_orders)
    k = n_items
    if k < 2 or budget == 0:
        return SamplerReport(reason="no pairs to compare" if k < 2 else "budget is 0")
    from ..aggregators.bt import bradley_terry

    cost = cost_of(both)
    batch = int(batch_size) if batch_size is not None else max(8, k // 4)
    z = float(ndtri(0.5 + confidence / 2.0))
    asked = np.zeros((k, k), dtype=bool)
    a_seen: list[int] = []
    b_seen: list[int] = []
    p_seen: list[float] = []
    left = budget

    def record(pairs: list[Pair], p: np.ndarray) -> None:
        nonlocal left
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        if len(p) != len(pairs):
            raise RuntimeError(f"active sampler got {len(p)} answers for {len(pairs)} pairs")
        for (a, b), pa in zip(pairs, p, strict=True):
            asked[a, b] = True
            a_seen.append(a)
            b_seen.append(b)
            p_seen.append(float(pa))
        left -= len(pairs)

    ring = [(i, i + 1) for i in range(k - 1)] + ([(k - 1, 0)] if k >= 3 else [])
    first = orient(ring, left, both, rng)
    record(first, (yield first))
    iu, ju = np.triu_indices(k, 1)
    m = min(top_n + 1, k)
    while left > 0:
        comps = Comparisons(k, np.array(a_seen), np.array(b_seen), np.array(p_seen))
        fit = bradley_terry(comps, alpha=alpha)
        s = np.asarray(fit.scores, dtype=np.float64)
        C = score_covariance(comps, s, alpha, variance, fit.stderr, prior_dof)
        var = np.maximum(np.diag(C), 1e-12)

        def diff_var(i: np.ndarray, j: np.ndarray, C: np.ndarray = C, var: np.ndarray = var) -> np.ndarray:
            return np.maximum(var[i] + var[j] - 2.0 * C[i, j], 1e-12)

        rank = np.argsort(-s, kind="stable")
        head = rank[:m]
        gap = s[head[:-1]] - s[head[1:]]
        if np.all(gap > z * np.sqrt(diff_var(head[:-1], head[1:]))):
            return SamplerReport(
                stopped_early=True,
                reason=f"top {min(top_n, k)} separated at {confidence:.0%} confidence "
                f"after {budget - left} of {budget} comparisons",
            )
        n_ord = asked[iu, ju].astype(np.int64) + asked[ju, iu]
        avail = n_ord == 0 if both else n_ord < 2
        if not avail.any():
            return SamplerReport(reason=f"every ordered pair compared ({budget - left} comparisons)")
        ci, cj, cn = iu[avail], ju[avail], n_ord[avail]
        v = diff_var(ci, cj)
        reduction = np.sqrt(v / (cn + 1)) - np.sqrt(v / (cn + 2))
        unsettled = 2.0 * ndtr(-np.abs(s[ci] - s[cj]) / np.sqrt(v))
        if k > m:
            t = 0.5 * (s[rank[m - 1]] + s[rank[m]])
            rel = ndtr((s - t) / np.sqrt(var))
            focus = np.maximum(rel[ci], rel[cj])
        else:
            focus = np.ones(len(ci))
        util = reduction * unsettled * focus
        count = min(batch, len(ci), max(left // cost, 1))
        keys = np.log(np.maximum(util, 1e-300)) + rng.gumbel(size=len(ci))
        pick = np.argsort(-keys, kind="stable")[:count]
        flips = rng.random(count) < 0.5
        pairs: list[Pair] = []
        for f, idx in zip(flips, pick, strict=True):
            i, j = int(ci[idx]), int(cj[idx])
            if both and left - len(pairs) >= 2:
                pairs += [(i, j), (j, i)]
            elif asked[i, j] or asked[j, i]:
                pairs.append((j, i) if asked[i, j] else (i, j))
            else:
                pairs.append((j, i) if f else (i, j))
        record(pairs, (yield pairs))
    return SamplerReport(reason=f"budget of {budget} comparisons spent")
