"""Bradley-Terry on the Elo scale from arena battles, as Chatbot Arena computes it (FastChat).

Reference: lm-sys/FastChat ``fastchat/serve/monitor/elo_analysis.py`` at commit
663442ef3177d4be34ba67f693977896546da525 (the last with the scikit-learn fit), ``compute_elo_mle_with_tie``:
a logistic regression without intercept or penalty over rows ``+ln(BASE)`` for model_a and ``-ln(BASE)`` for
model_b, where a win counts twice for its winner and a tie once for each side (``ptbl_win = 2 A wins +
2 B wins^T + ties + ties^T``); ratings ``SCALE * coef + INIT_RATING`` (SCALE 400, BASE 10, INIT_RATING 1000).
Chiang et al. 2024 (Chatbot Arena, section 5) give the model and the sandwich intervals.

Here the same maximum-likelihood problem is solved exactly on its sufficient statistics (a K x K win-count
matrix) by Newton's method, instead of L-BFGS over one row per ordered pair: the likelihood gradient sums
to zero, so FastChat's L-BFGS started at zero stays on mean-zero coefficients, i.e. its ratings average
INIT_RATING exactly as these do. FastChat shifts its ratings so that ``mixtral-8x7b-instruct-v0.1`` is 1114
when that model is present; here an anchor is the caller's choice (:func:`anchor_shift`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.sparse.csgraph import connected_components
from scipy.special import expit
from scipy.stats import norm

from ..aggregators.bt import _cholesky, _evaluate, _shifted_hessian, _solve_factored
from .votes import A_WINS, B_WINS, Battles

SCALE, BASE, INIT_RATING = 400.0, 10.0, 1000.0


class NoFiniteRatingsError(ValueError):
    """The battles leave some rating unbounded (a model that never lost, or never won, against a group)."""


def win_counts(battles: Battles) -> np.ndarray:
    """``W[i, j]`` = FastChat's ``ptbl_win``: 2 per win of i over j, 1 per tie of i and j (either side)."""
    n = len(battles.models)
    a, b, o = battles.a, battles.b, battles.outcome
    weight_ab = np.where(o == A_WINS, 2.0, np.where(o == B_WINS, 0.0, 1.0))
    W = np.bincount(a * n + b, weights=weight_ab, minlength=n * n)
    W += np.bincount(b * n + a, weights=2.0 - weight_ab, minlength=n * n)
    return W.reshape(n, n)


def _mle_natural(W: np.ndarray, tol: float = 1e-12, max_iter: int = 100) -> np.ndarray:
    """Unpenalised Bradley-Terry maximum likelihood (natural log-odds, mean zero) of a strongly connected W."""
    n = len(W)
    if n == 1:
        return np.zeros(1)
    if connected_components(W > 0, directed=True, connection="strong")[0] != 1:
        raise NoFiniteRatingsError("Bradley-Terry ratings are unbounded: some models never lost (or never won) "
                                   "against the others, directly or through a chain of results")
    N = W + W.T
    wins = W.sum(axis=1)
    theta = np.zeros(n)
    f, S = _evaluate(theta, W, 0.0)
    for _ in range(max_iter):
        NS, H, _beta = _shifted_hessian(S, N, 0.0)
        g = NS.sum(axis=1) - wins
        g -= g.mean()
        step = _solve_factored(_cholesky(H), -g)
        step -= step.mean()
        slope = float(g @ step)
        if slope >= 0 or float(np.abs(step).max()) < tol:
            break
        t = 1.0
        cand = theta + step
        fc, Sc = _evaluate(cand, W, 0.0)
        while fc > f + 1e-4 * t * slope + 1e-12 * max(1.0, abs(f)) and t > 1e-12:
            t *= 0.5
            cand = theta + t * step
            fc, Sc = _evaluate(cand, W, 0.0)
        theta, f, S = cand, fc, Sc
        if float(np.abs(t * step).max()) < tol:
            break
    return theta


def to_elo(theta: np.ndarray, scale: float = SCALE, base: float = BASE, init: float = INIT_RATING) -> np.ndarray:
    """Natural log-odds strengths to the Elo scale: ``scale * theta / ln(base) + init``."""
    return scale * theta / math.log(base) + init


def bt_ratings(battles: Battles, *, scale: float = SCALE, base: float = BASE,
               init: float = INIT_RATING) -> np.ndarray:
    """Bradley-Terry ratings on the Elo scale (FastChat's ``compute_elo_mle_with_tie``), one per model of
    ``battles.models``; NaN for a model with no battle here (as FastChat leaves it out of that fit)."""
    W = win_counts(battles)
    present = np.flatnonzero(W.sum(axis=0) + W.sum(axis=1) > 0)
    out = np.full(len(battles.models), np.nan)
    out[present] = to_elo(_mle_natural(W[np.ix_(present, present)]), scale, base, init)
    return out


def bootstrap_indexes(n_battles: int, rounds: int, seed: int):
    """The battle indexes of each bootstrap round, drawn as FastChat's ``battles.sample(frac=1.0,
    replace=True)`` draws them after ``np.random.seed(seed)`` (``RandomState.choice(n, n, replace=True)``)."""
    state = np.random.RandomState(seed)
    for _ in range(rounds):
        yield state.choice(n_battles, size=n_battles, replace=True)


def bootstrap(battles: Battles, fit, rounds: int, seed: int) -> np.ndarray:
    """``rounds x models`` ratings of ``fit`` on resampled battles (FastChat's ``get_bootstrap_result``)."""
    rows = [np.zeros((0, len(battles.models)))]
    for number, idx in enumerate(bootstrap_indexes(len(battles), rounds, seed), 1):
        try:
            rows.append(fit(battles.take(idx))[None, :])
        except NoFiniteRatingsError as exc:
            raise NoFiniteRatingsError(f"bootstrap round {number} of {rounds}: {exc} in that resample (too few "
                                       "battles for bootstrap intervals: use sandwich intervals)") from None
    return np.vstack(rows)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Per-model quantiles ``(1 - level) / 2`` and ``(1 + level) / 2`` of bootstrap rows, NaNs skipped (as
    pandas' ``DataFrame.quantile``, linear interpolation): FastChat's ``rating_q025`` and ``rating_q975``."""
    lo, hi = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    return np.nanquantile(samples, lo, axis=0), np.nanquantile(samples, hi, axis=0)


def sandwich_interval(battles: Battles, ratings: np.ndarray, level: float = 0.95, *,
                      scale: float = SCALE, base: float = BASE) -> tuple[np.ndarray, np.ndarray]:
    """Robust (sandwich, Huber-White) normal intervals of the Bradley-Terry ratings (Chiang et al. 2024, 5):
    ``cov = H^+ M H^+`` with the bread ``H`` the Fisher information of FastChat's two rows per battle and the
    meat ``M`` the sum of outer products of each battle's score; no resampling."""
    n = len(battles.models)
    theta = (ratings - np.nanmean(ratings)) * math.log(base) / scale
    theta = np.nan_to_num(theta)
    a, b = battles.a, battles.b
    s = expit(theta[a] - theta[b])
    y = np.where(battles.outcome == A_WINS, 2.0, np.where(battles.outcome == B_WINS, 0.0, 1.0))
    residual = y - 2.0 * s  # the battle's score is residual * (e_a - e_b)
    H = np.zeros((n, n))
    info = 2.0 * s * (1.0 - s)
    np.add.at(H, (a, a), info)
    np.add.at(H, (b, b), info)
    np.add.at(H, (a, b), -info)
    np.add.at(H, (b, a), -info)
    M = np.zeros((n, n))
    r2 = residual * residual
    np.add.at(M, (a, a), r2)
    np.add.at(M, (b, b), r2)
    np.add.at(M, (a, b), -r2)
    np.add.at(M, (b, a), -r2)
    present = np.flatnonzero(np.diag(H) > 0)
    m = len(present)
    # the pseudo-inverse of a connected graph Laplacian: C (H + 11^T / m)^-1 C, C = I - 11^T / m
    center = np.eye(m) - 1.0 / m
    H_plus = center @ np.linalg.inv(H[np.ix_(present, present)] + 1.0 / m) @ center
    cov = H_plus @ M[np.ix_(present, present)] @ H_plus
    se = np.full(n, np.nan)
    se[present] = scale / math.log(base) * np.sqrt(np.clip(np.diag(cov), 0.0, None))
    z = float(norm.ppf((1.0 + level) / 2.0))
    return ratings - z * se, ratings + z * se
