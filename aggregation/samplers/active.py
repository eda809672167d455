"""``active``: adaptive pair selection on a Bradley-Terry estimate (Chatbot Arena / K-Sort Arena style)."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from ..comparisons import Comparisons, sigmoid
from ._common import check_common, cost_of, orient
from .base import Pair, SamplerReport, SamplerRun


def _variances(comps: Comparisons, scores: np.ndarray, stderr: np.ndarray | None) -> np.ndarray:
    """Per-item score variances: the fit's stderr squared, or the inverse diagonal Fisher information."""
    if stderr is not None:
        var = np.asarray(stderr, dtype=np.float64) ** 2
    else:
        _, N = comps.win_matrix()
        q = sigmoid(scores[:, None] - scores[None, :])
        var = 1.0 / (np.sum(N * q * (1.0 - q), axis=1) + 1e-2)
    return np.where(np.isfinite(var), np.maximum(var, 1e-12), 1e6)


def active(
    n_items: int,
    budget: int,
    *,
    rng: np.random.Generator,
    both_orders: bool | None = None,
    top_n: int = 10,
    batch_size: int | None = None,
    confidence: float = 0.95,
    alpha: float | None = None,
) -> SamplerRun:
    """Adaptive sampling focused on the top ``top_n``, with an early stop at ``confidence``.

    1. A ring of first-stage neighbours (i, i+1 mod k): k pairs, fewer (top first) if the budget is short.
    2. Rounds of ``batch_size`` pairs (default ``max(8, k // 4)``): fit Bradley-Terry
       (``aggregators.bt.bradley_terry``, ``alpha`` passed on when given) to everything seen; stop early
       when every adjacent pair among the estimated top ``top_n + 1`` items is separated,
       ``s_i - s_(i+1) > z * sqrt(var_i + var_(i+1))`` with ``z`` the two-sided normal quantile of
       ``confidence``. Otherwise each pair (i, j) not yet asked in every order gets the utility
       ``(sqrt(v/(n+1)) - sqrt(v/(n+2))) * 2 Phi(-|s_i - s_j| / sqrt(v)) * max(r_i, r_j)``:
       the Chatbot Arena uncertainty reduction (v = var_i + var_j, n = calls on the pair so far, shifted
       by one so unseen pairs are finite), times the chance the pair's order is unsettled, times the
       chance r = Phi((s - t) / se) that an item lies above the score t between estimated ranks
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
        fit = bradley_terry(comps) if alpha is None else bradley_terry(comps, alpha=alpha)
        s = np.asarray(fit.scores, dtype=np.float64)
        var = _variances(comps, s, fit.stderr)
        rank = np.argsort(-s, kind="stable")
        head = rank[:m]
        gap = s[head[:-1]] - s[head[1:]]
        if np.all(gap > z * np.sqrt(var[head[:-1]] + var[head[1:]])):
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
        v = var[ci] + var[cj]
        sd = np.sqrt(v)
        reduction = np.sqrt(v / (cn + 1)) - np.sqrt(v / (cn + 2))
        unsettled = 2.0 * ndtr(-np.abs(s[ci] - s[cj]) / sd)
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
