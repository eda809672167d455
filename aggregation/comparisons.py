"""Core types of the engine: comparisons, budgets and rankings.

A *comparison* is one model call on the ordered pair (a, b) and yields p = P(a preferred to b).
Items are integers ``0 .. n_items - 1`` in first-stage order; callers map their own ids onto them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Probabilities are clipped to [EPS, 1 - EPS] before any logit is taken.
EPS = 1e-6


@dataclass(frozen=True)
class Comparisons:
    """A set of comparisons over ``n_items`` items, stored as parallel arrays.

    ``a[i], b[i], p[i]``: the model was shown (a, b) in that order and answered P(a > b) = p.
    ``weight[i]`` counts how many model calls the row stands for (1 for raw comparisons; a
    calibrated row that merges both orders of a pair carries weight 2).
    """

    n_items: int
    a: np.ndarray
    b: np.ndarray
    p: np.ndarray
    weight: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        a = np.asarray(self.a, dtype=np.int64).reshape(-1)
        b = np.asarray(self.b, dtype=np.int64).reshape(-1)
        p = np.asarray(self.p, dtype=np.float64).reshape(-1)
        w = np.ones_like(p) if self.weight is None else np.asarray(self.weight, dtype=np.float64).reshape(-1)
        if not (len(a) == len(b) == len(p) == len(w)):
            raise ValueError("comparisons: a, b, p and weight must have the same length")
        if self.n_items < 0:
            raise ValueError(f"n_items must be >= 0, got {self.n_items}")
        if len(a) and (a.min() < 0 or b.min() < 0 or a.max() >= self.n_items or b.max() >= self.n_items):
            raise ValueError(f"comparisons: item index out of range 0..{self.n_items - 1}")
        if np.any(a == b):
            raise ValueError("comparisons: an item cannot be compared with itself")
        if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
            raise ValueError("comparisons: p must lie in [0, 1]")
        if np.any(w <= 0):
            raise ValueError("comparisons: weights must be positive")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "weight", w)

    @classmethod
    def from_triples(cls, n_items: int, triples: Iterable[tuple[int, int, float]]) -> Comparisons:
        """Build from ``(a, b, p)`` triples."""
        rows = list(triples)
        if not rows:
            return cls.empty(n_items)
        a, b, p = zip(*rows, strict=True)
        return cls(n_items, np.array(a), np.array(b), np.array(p))

    @classmethod
    def empty(cls, n_items: int) -> Comparisons:
        return cls(n_items, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))

    @classmethod
    def concat(cls, n_items: int, parts: Sequence[Comparisons]) -> Comparisons:
        if not parts:
            return cls.empty(n_items)
        return cls(
            n_items,
            np.concatenate([c.a for c in parts]),
            np.concatenate([c.b for c in parts]),
            np.concatenate([c.p for c in parts]),
            np.concatenate([c.weight for c in parts]),
        )

    def __len__(self) -> int:
        return len(self.p)

    @property
    def model_calls(self) -> int:
        """Model calls these rows stand for."""
        return round(float(self.weight.sum()))

    def win_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense sufficient statistics: ``W[i, j]`` = weighted soft wins of i over j, ``N = W + W.T``."""
        n = self.n_items
        # np.bincount sums in row order, like np.add.at, at a fraction of its cost
        W = np.bincount(self.a * n + self.b, weights=self.weight * self.p, minlength=n * n)
        W += np.bincount(self.b * n + self.a, weights=self.weight * (1.0 - self.p), minlength=n * n)
        W = W.reshape(n, n)
        return W, W + W.T

    def preference_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """``P[i, j]`` = mean P(i > j) over all rows on the pair (either order), ``seen[i, j]`` = compared."""
        W, N = self.win_matrix()
        seen = N > 0
        P = np.full(W.shape, 0.5)
        np.divide(W, N, out=P, where=seen)
        return P, seen


@dataclass(frozen=True)
class AggregateResult:
    """Scores per item (higher is better) and, where the method gives them, standard errors."""

    scores: np.ndarray
    stderr: np.ndarray | None = None
    order: np.ndarray | None = None  # set by methods that produce an order directly (greedy, kwiksort)

    def ranking(self) -> np.ndarray:
        """Item indices best first; ties keep first-stage (index) order."""
        if self.order is not None:
            return np.asarray(self.order, dtype=np.int64)
        return np.argsort(-np.asarray(self.scores, dtype=np.float64), kind="stable")


def resolve_budget(n_items: int, budget: int | float | None) -> int:
    """Turn a budget (comparisons, or a fraction of k(k-1) when a float in (0, 1]) into comparisons.

    ``None`` means all ordered pairs. Raises ``ValueError`` for negative or non-finite budgets.
    """
    all_pairs = n_items * (n_items - 1)
    if budget is None:
        return all_pairs
    if isinstance(budget, bool):
        raise ValueError("budget must be a number, not a bool")
    if isinstance(budget, float):
        if not np.isfinite(budget) or budget <= 0:
            raise ValueError(f"budget must be a positive fraction or a count, got {budget}")
        if budget <= 1.0:
            return int(np.floor(budget * all_pairs + 1e-9))
        if not budget.is_integer():
            raise ValueError(f"budget above 1 must be a whole number of comparisons, got {budget}")
    value = int(budget)
    if value < 0:
        raise ValueError(f"budget must be >= 0 comparisons, got {value}")
    return value


def minimum_budget(n_items: int) -> int:
    """The fewest comparisons a re-ranking of ``n_items`` rests on: one as soon as there is a pair.

    Every sampler works from one comparison up (a sorting sampler stops with a partial order, the static
    ones ask the first pairs in their priority order), so the minimum is the same for all of them; a
    budget below it would rank without ever asking the model.
    """
    return 1 if n_items >= 2 else 0


def check_budget(n_items: int, budget: int | float | None) -> int:
    """:func:`resolve_budget`, then refuse a budget below :func:`minimum_budget` with a message that gives
    what was asked, k and the minimum. Raises ``ValueError``."""
    value = resolve_budget(n_items, budget)
    need = minimum_budget(n_items)
    if value < need:
        asked = f"a fraction {budget:g} of k(k-1) = {n_items * (n_items - 1)}" if isinstance(budget, float) else (
            f"{budget}")
        raise ValueError(f"{asked} resolves to {value} comparisons for k = {n_items} candidates; "
                         f"at least {need} is needed")
    return value


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of p, clipped to [EPS, 1 - EPS]."""
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(q) - np.log1p(-q)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out
