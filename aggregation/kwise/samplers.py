"""K-wise samplers: which K candidates each model call shows, under a budget of calls.

The protocol mirrors the pairwise one (:mod:`..samplers.base`): a sampler is a generator function
``sampler(n_items, budget, *, rng, k, top_n, **options)`` that yields rounds (lists of groups, each a list of
item indexes in slot order), receives the model's answers for a round (one distribution over the K slots per
group) through ``send``, and returns a :class:`~..samplers.base.SamplerReport`. A call is one unit of budget
whatever its K; :func:`run_kwise_sampler` enforces it.

- ``setwise-heapsort`` and ``setwise-bubblesort``: llm-rankers' ``SetwiseLlmRanker`` (ielab/llm-rankers
  ``llmrankers/setwise.py`` at b36517bf), ``num_child = k - 1`` children per heap node (heapsort) or a window
  of ``k`` sliding up by ``k - 1`` (bubblesort), the top ``top_n`` sorted, each call read as its argmax slot.
  They stop with the order they built; with too small a budget they stop early without an order. One
  difference: where llm-rankers' bubblesort shows a window of one passage (top_n close to the number of
  candidates), it still calls the model; here that call is skipped (its answer can only be that passage).
- ``kwise-random``: random partitions of the items into groups of K (the last group topped up at random), round
  after round until the budget is spent.
- ``kwise-active``: the K-wise Bayesian posteriors of :mod:`..arena.ksort` updated with each answer (soft
  outcomes P_i / (P_i + P_j)); each round is a set of disjoint groups, each led by the widest posterior left and
  filled with its most informative partners (matchmaking).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

from ..arena.ksort import Posterior, next_group
from ..samplers.base import SamplerReport
from .observations import KwiseObservations

Group = list[int]
KwiseRun = Generator[list[Group], list[np.ndarray], SamplerReport]
KwiseCompareFn = Callable[[list[Group]], list[np.ndarray]]


def _ask(group: Group) -> Generator[list[Group], list[np.ndarray], int]:
    """One call as its own round; returns the slot of highest probability (the first on a tie)."""
    answers = yield [group]
    return int(np.argmax(answers[0]))


class _Budget:
    def __init__(self, budget: int) -> None:
        self.left = budget

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class _OutOfBudgetError(Exception):
    pass


def setwise_heapsort(n_items: int, budget: int, *, rng: np.random.Generator, k: int = 4, top_n: int = 10,
                     **_: object) -> KwiseRun:
    """llm-rankers' setwise heapsort: a ``num_child``-ary max-heap over the first-stage order, then top_n pops."""
    num_child = k - 1
    arr = list(range(n_items))
    spend = _Budget(budget)

    def heapify(n: int, i: int) -> Generator[list[Group], list[np.ndarray], None]:
        while num_child * i + 1 < n:
            inds = [i, *range(num_child * i + 1, min(num_child * (i + 1) + 1, n))]
            if not spend.take():
                raise _OutOfBudgetError
            best = yield from _ask([arr[j] for j in inds])
            largest = inds[best] if best < len(inds) else i
            if largest == i:
                return
            arr[i], arr[largest] = arr[largest], arr[i]
            i = largest  # llm-rankers recurses on the swapped child; the same as a loop

    try:
        for i in range(n_items // num_child, -1, -1):
            yield from heapify(n_items, i)
        for ranked, i in enumerate(range(n_items - 1, 0, -1), 1):
            arr[i], arr[0] = arr[0], arr[i]
            if ranked == top_n:
                break
            yield from heapify(i, 0)
    except _OutOfBudgetError:
        return SamplerReport(reason="budget spent before the heapsort finished")
    top = list(reversed(arr))[:top_n]
    rest = [i for i in range(n_items) if i not in set(top)]
    return SamplerReport(stopped_early=spend.left > 0, reason="heapsort done", order=np.asarray(top + rest))


def setwise_bubblesort(n_items: int, budget: int, *, rng: np.random.Generator, k: int = 4, top_n: int = 10,
                       **_: object) -> KwiseRun:
    """llm-rankers' setwise bubblesort (its faster variant, which skips windows that did not change)."""
    num_child = k - 1
    ranking = list(range(n_items))
    spend = _Budget(budget)
    last_start = n_items - (num_child + 1)
    for i in range(min(top_n, n_items)):
        start_ind = last_start
        end_ind = last_start + (num_child + 1)
        is_change = False
        while True:
            if start_ind < i:
                start_ind = i
            window = ranking[start_ind:end_ind]
            if len(window) < 2:  # llm-rankers spends a call on a one-passage window; its answer is that passage
                best_ind = 0
            elif not spend.take():
                return SamplerReport(reason="budget spent before the bubblesort finished")
            else:
                best_ind = yield from _ask(window)
            if best_ind != 0:
                ranking[start_ind], ranking[start_ind + best_ind] = ranking[start_ind + best_ind], ranking[start_ind]
                if not is_change:
                    is_change = True
                    if last_start != n_items - (num_child + 1) and best_ind == len(window) - 1:
                        last_start += len(window) - 1
            if start_ind == i:
                break
            if not is_change:
                last_start -= num_child
            start_ind -= num_child
            end_ind -= num_child
    top = ranking[:top_n]
    rest = [i for i in range(n_items) if i not in set(top)]
    return SamplerReport(stopped_early=spend.left > 0, reason="bubblesort done", order=np.asarray(top + rest))


def _partition(n_items: int, k: int, rng: np.random.Generator) -> list[Group]:
    perm = rng.permutation(n_items).tolist()
    groups = [perm[s:s + k] for s in range(0, n_items, k)]
    if len(groups[-1]) < k:  # top the last group up with other items
        others = [i for i in rng.permutation(n_items).tolist() if i not in groups[-1]]
        groups[-1] += others[: k - len(groups[-1])]
    return groups


def kwise_random(n_items: int, budget: int, *, rng: np.random.Generator, k: int = 4, top_n: int = 10,
                 **_: object) -> KwiseRun:
    """Random partitions into groups of K until the budget is spent."""
    left = budget
    while left > 0:
        groups = _partition(n_items, k, rng)[:left]
        yield groups
        left -= len(groups)
    return SamplerReport(reason="budget spent")


def soft_ranks(probs: np.ndarray) -> np.ndarray:
    """Pairwise soft outcomes of one answer: ``S[i, j] = P_i / (P_i + P_j)`` (Luce), 1/2 where both are 0."""
    total = probs[:, None] + probs[None, :]
    return np.divide(probs[:, None], total, out=np.full(total.shape, 0.5), where=total > 0)


def kwise_active(n_items: int, budget: int, *, rng: np.random.Generator, k: int = 4, top_n: int = 10,
                 **_: object) -> KwiseRun:
    """Rounds of disjoint groups chosen by matchmaking on K-wise Bayesian posteriors (see the module doc)."""
    post = Posterior.prior(n_items)
    left = budget
    while left > 0:
        free = np.ones(n_items, dtype=bool)
        groups: list[Group] = []
        while left - len(groups) > 0 and int(free.sum()) >= k:
            idx = np.flatnonzero(free)
            sub = Posterior(post.mu[idx], post.sigma2[idx], post.votes[idx])
            group = idx[next_group(sub, k, rng)].tolist()
            free[group] = False
            groups.append(group)
        if not groups:  # fewer than K items free: cannot happen for k <= n_items
            break
        answers = yield groups
        for group, probs in zip(groups, answers, strict=True):
            post.update(np.asarray(group), None, outcome=soft_ranks(np.asarray(probs, dtype=float)))
        left -= len(groups)
    return SamplerReport(reason="budget spent")


@dataclass
class KwiseOutcome:
    """Everything a K-wise sampling run saw."""

    observations: KwiseObservations
    rounds: int
    budget: int
    stopped_early: bool = False
    reason: str = ""
    order: np.ndarray | None = None
    round_sizes: list[int] = field(default_factory=list)

    @property
    def used(self) -> int:
        return len(self.observations)


def run_kwise_sampler(sampler: Callable[..., KwiseRun], n_items: int, budget: int, compare: KwiseCompareFn, *,
                      k: int = 4, seed: int | None = None, top_n: int = 10, **options: object) -> KwiseOutcome:
    """Drive a K-wise sampler to its end; ``compare`` answers a round of groups with one distribution each."""
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if not 2 <= k <= max(n_items, 2):
        raise ValueError(f"k must be between 2 and the number of items ({n_items}), got {k}")
    gen = sampler(n_items, budget, rng=np.random.default_rng(seed), k=k, top_n=top_n, **options)
    groups_all: list[Group] = []
    probs_all: list[np.ndarray] = []
    sizes: list[int] = []
    report = SamplerReport()
    try:
        groups = next(gen)
        while True:
            if len(groups_all) + len(groups) > budget:
                raise RuntimeError(f"K-wise sampler asked for {len(groups_all) + len(groups)} calls over a budget "
                                   f"of {budget}")
            answers = [np.asarray(a, dtype=float) for a in compare(groups)] if groups else []
            if len(answers) != len(groups):
                raise RuntimeError(f"compare returned {len(answers)} answers for {len(groups)} groups")
            groups_all += groups
            probs_all += answers
            sizes.append(len(groups))
            groups = gen.send(answers)
    except StopIteration as stop:
        if stop.value is not None:
            report = stop.value
    obs = KwiseObservations.from_calls(n_items, groups_all, probs_all) if groups_all \
        else KwiseObservations.empty(n_items)
    return KwiseOutcome(obs, len(sizes), budget, report.stopped_early, report.reason, report.order, sizes)
