"""Leaderboards from arena votes: one row per model with a score on the Elo scale, an interval and a rank."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from .bt import bootstrap, bt_ratings, percentile_interval, sandwich_interval
from .elo import elo_ratings
from .ksort import ksort_posterior
from .votes import Votes

#: Interval kinds each method supports; the first is its default.
INTERVALS: dict[str, tuple[str, ...]] = {
    "bt": ("bootstrap", "sandwich", "none"),
    "elo": ("bootstrap", "none"),
    "ksort": ("posterior", "none"),
}

DEFAULT_ROUNDS = 100  # FastChat's --num-bootstrap default


@dataclass(frozen=True)
class Row:
    """One leaderboard line."""

    model: str
    score: float
    lower: float | None
    upper: float | None
    rank: int
    votes: int


def ci_ranks(score: np.ndarray, lower: np.ndarray | None, upper: np.ndarray | None) -> np.ndarray:
    """FastChat's rank: 1 + the number of models whose lower bound is above this model's upper bound (models
    whose intervals overlap share a rank); without intervals, 1 + the number of strictly higher scores."""
    if lower is None or upper is None:
        return 1 + (score[None, :] > score[:, None]).sum(axis=1)
    return 1 + (lower[None, :] > upper[:, None]).sum(axis=1)


def bt_scores(votes: Votes, intervals: str, rounds: int, seed: int, level: float):
    """Bradley-Terry ratings (FastChat's fit) with bootstrap, sandwich or no intervals."""
    battles = votes.implied_battles()
    score = bt_ratings(battles)
    if intervals == "bootstrap":
        return (score, *percentile_interval(bootstrap(battles, bt_ratings, rounds, seed), level))
    if intervals == "sandwich":
        return (score, *sandwich_interval(battles, score, level))
    return score, None, None


def elo_scores(votes: Votes, intervals: str, rounds: int, seed: int, level: float):
    """FastChat's Elo leaderboard: the median of the bootstrap ratings, and its quantiles; the online ratings
    of the log in order without a bootstrap."""
    battles = votes.implied_battles()
    if intervals == "none":
        return elo_ratings(battles), None, None
    samples = bootstrap(battles, elo_ratings, rounds, seed)
    return (np.nanmedian(samples, axis=0), *percentile_interval(samples, level))


def ksort_scores(votes: Votes, intervals: str, rounds: int, seed: int, level: float):
    """K-wise Bayesian posterior means on the Elo scale, with normal posterior intervals."""
    post = ksort_posterior(votes)
    to_elo = 400.0 / math.log(10.0)
    score = to_elo * post.mu + 1000.0
    if intervals == "none":
        return score, None, None
    half = float(norm.ppf((1.0 + level) / 2.0)) * to_elo * np.sqrt(post.sigma2)
    return score, score - half, score + half


METHODS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]] = {
    "bt": bt_scores,
    "elo": elo_scores,
    "ksort": ksort_scores,
}


def leaderboard(votes: Votes, method: str = "bt", *, intervals: str | None = None, rounds: int = DEFAULT_ROUNDS,
                seed: int = 0, level: float = 0.95) -> list[Row]:
    """The leaderboard of ``votes`` by ``method`` ('bt', 'elo', 'ksort'), best first; models with no vote are
    left out. ``intervals``: one of ``INTERVALS[method]`` (default its first)."""
    if method not in METHODS:
        raise ValueError(f"unknown arena method {method!r}; known: {', '.join(METHODS)}")
    intervals = intervals or INTERVALS[method][0]
    if intervals not in INTERVALS[method]:
        raise ValueError(f"method {method!r} gives intervals {', '.join(INTERVALS[method])}, not {intervals!r}")
    if intervals == "bootstrap" and rounds < 1:
        raise ValueError(f"bootstrap intervals need rounds >= 1, got {rounds}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    score, lower, upper = METHODS[method](votes, intervals, rounds, seed, level)
    counts = np.bincount(votes.members, minlength=len(votes.models))
    keep = np.flatnonzero(counts > 0)
    score = score[keep]
    lower = lower[keep] if lower is not None else None
    upper = upper[keep] if upper is not None else None
    ranks = ci_ranks(score, lower, upper)
    order = sorted(range(len(keep)), key=lambda i: (-score[i], votes.models[keep[i]]))
    return [Row(votes.models[keep[i]], float(score[i]),
                None if lower is None else float(lower[i]), None if upper is None else float(upper[i]),
                int(ranks[i]), int(counts[keep[i]])) for i in order]
