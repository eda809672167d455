"""The sampler protocol and the driver that runs a sampler against a comparison function.

A sampler is a generator function. It yields *rounds* (lists of ordered pairs ``(a, b)``), receives
the model's answers for a round as an array of p (one per pair, in order) through ``send``, and
returns a :class:`SamplerReport` when it is done. Every round is one batch for the model layer.
All per-request state lives in the generator, so one sampler function serves concurrent requests.

Signature every sampler follows::

    def name(n_items: int, budget: int, *, rng: np.random.Generator,
             both_orders: bool | None = None, top_n: int = 10, **options) -> SamplerRun

``budget`` is in comparisons (model calls). ``both_orders=None`` means the sampler's own default.
A sampler never asks for more than ``budget`` comparisons in total.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

from ..comparisons import Comparisons

Pair = tuple[int, int]
SamplerRun = Generator[list[Pair], np.ndarray, "SamplerReport"]
Sampler = Callable[..., SamplerRun]
CompareFn = Callable[[list[Pair]], np.ndarray]


@dataclass
class SamplerReport:
    """What a sampler says when it finishes."""

    stopped_early: bool = False  # finished before the budget because the result was settled
    reason: str = ""
    order: np.ndarray | None = None  # an order the sampler built itself (sorting samplers), best first


@dataclass
class SamplingOutcome:
    """Everything a sampling run saw: the comparisons, and how the run ended."""

    comparisons: Comparisons
    rounds: int
    budget: int
    stopped_early: bool = False
    timed_out: bool = False
    reason: str = ""
    order: np.ndarray | None = None
    round_sizes: list[int] = field(default_factory=list)

    @property
    def used(self) -> int:
        return len(self.comparisons)


def run_sampler(
    sampler: Sampler,
    n_items: int,
    budget: int,
    compare: CompareFn,
    *,
    seed: int | None = None,
    both_orders: bool | None = None,
    top_n: int = 10,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    max_rounds: int | None = None,
    **options: object,
) -> SamplingOutcome:
    """Drive ``sampler`` to the end (or to ``deadline``, a ``clock()`` time) and collect its comparisons.

    ``compare`` gets one round of pairs and returns their p. Stopping at the deadline happens between
    rounds; the comparisons seen so far are kept and the outcome is marked ``timed_out``. ``max_rounds``
    stops the run after that many rounds (model batches) the same way, without the timed-out mark.
    Raises ``ValueError`` for bad arguments and ``RuntimeError`` if a sampler breaks its contract.
    """
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if max_rounds is not None and max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    rng = np.random.default_rng(seed)
    gen = sampler(n_items, budget, rng=rng, both_orders=both_orders, top_n=top_n, **options)
    a_parts: list[np.ndarray] = []
    b_parts: list[np.ndarray] = []
    p_parts: list[np.ndarray] = []
    used = 0
    sizes: list[int] = []
    report = SamplerReport()
    timed_out = False
    capped = False
    try:
        pairs = next(gen)
        while True:
            if deadline is not None and clock() >= deadline:
                timed_out = True
                gen.close()
                break
            if max_rounds is not None and len(sizes) >= max_rounds and pairs:
                capped = True
                gen.close()
                break
            if used + len(pairs) > budget:
                raise RuntimeError(
                    f"sampler {getattr(sampler, '__name__', sampler)!r} asked for {used + len(pairs)} "
                    f"comparisons over a budget of {budget}"
                )
            if pairs:
                arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
                p = np.asarray(compare(pairs), dtype=np.float64).reshape(-1)
                if len(p) != len(arr):
                    raise RuntimeError(f"compare returned {len(p)} answers for {len(arr)} pairs")
                a_parts.append(arr[:, 0])
                b_parts.append(arr[:, 1])
                p_parts.append(p)
                used += len(arr)
                sizes.append(len(arr))
            else:
                p = np.zeros(0)
            pairs = gen.send(p)
    except StopIteration as stop:
        if stop.value is not None:
            report = stop.value
    comps = (
        Comparisons(n_items, np.concatenate(a_parts), np.concatenate(b_parts), np.concatenate(p_parts))
        if a_parts
        else Comparisons.empty(n_items)
    )
    return SamplingOutcome(
        comparisons=comps,
        rounds=len(sizes),
        budget=budget,
        stopped_early=report.stopped_early and not timed_out,
        timed_out=timed_out,
        reason="time limit reached" if timed_out else f"{max_rounds} rounds done" if capped else report.reason,
        order=None if timed_out or capped else report.order,
        round_sizes=sizes,
    )
