"""Helpers shared by the samplers: argument checks, pair orientation and a budgeted comparison oracle."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterable, Sequence

import numpy as np

from .base import Pair

#: What a sampler that asks for p yields to the driver, and what it gets back.
Ask = Generator[list[Pair], np.ndarray, None]


def check_common(n_items: int, budget: int, top_n: int) -> None:
    """Reject arguments no sampler can work with (the driver checks these too)."""
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if top_n < 0:
        raise ValueError(f"top_n must be >= 0, got {top_n}")


def cost_of(both: bool) -> int:
    """Model calls one chosen pair costs."""
    return 2 if both else 1


def orient(pairs: Sequence[tuple[int, int]], budget: int, both: bool, rng: np.random.Generator) -> list[Pair]:
    """Turn unordered pairs (priority order) into the ordered comparisons of one round, within ``budget``.

    One order: each pair in a random slot assignment (a fair coin from ``rng``), one call per pair.
    Both orders: ``(a, b)`` and ``(b, a)`` next to each other, two calls per pair; when a single call is
    left over it goes to one random-slot order of the next pair, so the budget is used to the last call.
    """
    cost = cost_of(both)
    n_full = min(len(pairs), budget // cost)
    half = both and n_full < len(pairs) and budget - n_full * cost >= 1
    n_flip = int(half) if both else n_full
    flips = rng.random(n_flip) < 0.5 if n_flip else np.zeros(0, dtype=bool)
    out: list[Pair] = []
    for idx in range(n_full):
        x, y = int(pairs[idx][0]), int(pairs[idx][1])
        if both:
            out += [(x, y), (y, x)]
        else:
            out.append((y, x) if flips[idx] else (x, y))
    if half:
        x, y = int(pairs[n_full][0]), int(pairs[n_full][1])
        out.append((y, x) if flips[0] else (x, y))
    return out


def dedupe(pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Distinct unordered pairs without self-pairs, first occurrence kept, as ``(min, max)``."""
    seen: set[tuple[int, int]] = set()
    out: list[tuple[int, int]] = []
    for x, y in pairs:
        if x == y:
            continue
        key = (x, y) if x < y else (y, x)
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


class Oracle:
    """Asks the model for pair decisions in batched rounds, caches them and keeps the budget.

    A decision is binary: in one order, ``a`` beats ``b`` when p(a, b) >= 0.5; in both orders, when
    (p(a, b) + 1 - p(b, a)) / 2 >= 0.5. A decided pair is never asked again (it costs nothing).
    """

    def __init__(self, budget: int, both: bool, rng: np.random.Generator) -> None:
        self.left = budget
        self.both = both
        self.rng = rng
        self._winner: dict[tuple[int, int], int] = {}

    def known(self, x: int, y: int) -> bool:
        return ((x, y) if x < y else (y, x)) in self._winner

    def beats(self, x: int, y: int) -> bool:
        """Whether x won against y (the pair must be known)."""
        return self._winner[(x, y) if x < y else (y, x)] == x

    def ask(self, wanted: Iterable[tuple[int, int]]) -> Ask:
        """Decide the wanted pairs in one round (``yield from`` it); pairs past the budget stay unknown."""
        todo = [key for key in dedupe(wanted) if key not in self._winner]
        pairs = orient(todo, self.left, self.both, self.rng)
        if not pairs:
            return
        p = yield pairs
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        if len(p) != len(pairs):
            raise RuntimeError(f"sampler got {len(p)} answers for {len(pairs)} pairs")
        self.left -= len(pairs)
        # P(first item of the row beats the second), both orders folded onto the first asked order
        score: dict[tuple[int, int], list[float]] = {}
        first: dict[tuple[int, int], int] = {}
        for (a, b), pa in zip(pairs, p, strict=True):
            key = (a, b) if a < b else (b, a)
            if key not in first:
                first[key] = a
            score.setdefault(key, []).append(pa if a == first[key] else 1.0 - pa)
        for key, vals in score.items():
            a = first[key]
            b = key[1] if a == key[0] else key[0]
            self._winner[key] = a if float(np.mean(vals)) >= 0.5 else b


def run_parallel(
    procs: Sequence[Generator[tuple[int, int], None, None]], oracle: Oracle
) -> Generator[list[Pair], np.ndarray, bool]:
    """Run independent decision processes in lockstep, one round per step.

    Each process yields the pair it needs decided next and is resumed once the oracle knows it. All the
    pairs wanted at one step go into one round. Returns False when the budget ran out (some wanted pair
    stayed unknown); the processes are then left where they were.
    """
    active: list[tuple[Generator[tuple[int, int], None, None], tuple[int, int]]] = []
    for proc in procs:
        with contextlib.suppress(StopIteration):
            active.append((proc, next(proc)))
    while active:
        yield from oracle.ask(w for _, w in active)
        if not all(oracle.known(*w) for _, w in active):
            return False
        nxt = []
        for proc, _ in active:
            with contextlib.suppress(StopIteration):
                nxt.append((proc, next(proc)))
        active = nxt
    return True
