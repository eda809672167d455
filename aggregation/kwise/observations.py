"""K-wise observations: one model call shows K candidates (in slot order) and answers a distribution over them.

A setwise call (Zhuang et al. 2024) asks which of K passages is most relevant and reads the probabilities of
the K label tokens; a K-wise vote in an arena ranks K models. Here a call is stored as the K item indexes it
showed, slot by slot, and the probability the model gave each slot (summing to 1; a hard choice is one-hot).

Pairwise aggregators read K-wise calls through their *implied pairs* (:meth:`KwiseObservations.implied_pairs`):
by Luce's choice axiom (Luce 1959), the choice probabilities P over a set imply, for each pair (i, j) of the set,
P(i over j) = P_i / (P_i + P_j) (1/2 when both are 0). Each call gives K(K-1)/2 rows in slot order (the earlier
slot first, so a first-slot bias stays visible to the pairwise diagnostics), each weighing 1/(K-1): a call's
rows weigh K/2 in all, the number of disjoint pairs its K candidates make.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..comparisons import Comparisons


@dataclass(frozen=True)
class KwiseObservations:
    """Calls in order: call c showed ``members[offsets[c]:offsets[c+1]]`` and answered ``probs`` there."""

    n_items: int
    members: np.ndarray
    probs: np.ndarray
    offsets: np.ndarray

    @classmethod
    def empty(cls, n_items: int) -> KwiseObservations:
        return cls(n_items, np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(1, dtype=np.int64))

    @classmethod
    def from_calls(cls, n_items: int, groups: list[list[int]], probs: list[np.ndarray]) -> KwiseObservations:
        """Build from per-call groups and distributions; validates shapes, ranges and sums."""
        if len(groups) != len(probs):
            raise ValueError(f"{len(groups)} groups but {len(probs)} answers")
        sizes = [len(g) for g in groups]
        for g, p in zip(groups, probs, strict=True):
            p = np.asarray(p, dtype=float)
            if len(g) < 2 or len(set(g)) != len(g):
                raise ValueError(f"a K-wise call shows at least 2 distinct items, got {list(g)}")
            if p.shape != (len(g),) or not np.all(np.isfinite(p)) or p.min() < 0 or abs(p.sum() - 1.0) > 1e-6:
                raise ValueError(f"a K-wise answer is a distribution over the {len(g)} shown items, got {p}")
            if min(g) < 0 or max(g) >= n_items:
                raise ValueError(f"item index out of range 0..{n_items - 1}: {list(g)}")
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        members = np.asarray([i for g in groups for i in g], dtype=np.int64)
        flat = np.concatenate([np.asarray(p, dtype=float) for p in probs]) if probs else np.zeros(0)
        return cls(n_items, members, flat, offsets)

    def __len__(self) -> int:
        """The number of model calls."""
        return len(self.offsets) - 1

    def call(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = int(self.offsets[c]), int(self.offsets[c + 1])
        return self.members[lo:hi], self.probs[lo:hi]

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def concat(self, other: KwiseObservations) -> KwiseObservations:
        return KwiseObservations(self.n_items, np.concatenate([self.members, other.members]),
                                 np.concatenate([self.probs, other.probs]),
                                 np.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]]))

    def with_probs(self, probs: np.ndarray) -> KwiseObservations:
        return KwiseObservations(self.n_items, self.members, np.asarray(probs, dtype=float), self.offsets)

    def implied_pairs(self) -> Comparisons:
        """Luce's implied pairwise preferences of every call (see the module docstring)."""
        a_parts, b_parts, p_parts, w_parts = [], [], [], []
        for c in range(len(self)):
            items, probs = self.call(c)
            i, j = np.triu_indices(len(items), k=1)
            total = probs[i] + probs[j]
            a_parts.append(items[i])
            b_parts.append(items[j])
            p_parts.append(np.divide(probs[i], total, out=np.full(len(i), 0.5), where=total > 0))
            w_parts.append(np.full(len(i), 1.0 / (len(items) - 1)))
        if not a_parts:
            return Comparisons.empty(self.n_items)
        return Comparisons(self.n_items, np.concatenate(a_parts), np.concatenate(b_parts), np.concatenate(p_parts),
                           np.concatenate(w_parts))

    def top1(self) -> list[tuple[int, tuple[int, ...]]]:
        """Each call as a hard top-1 choice ``(winner, losers)``: the slot of highest probability wins (the first
        such slot on a tie), as llm-rankers reads a setwise call (``sorted(..., reverse=True)[0]``)."""
        out = []
        for c in range(len(self)):
            items, probs = self.call(c)
            best = int(np.argmax(probs))
            out.append((int(items[best]), tuple(int(x) for k, x in enumerate(items) if k != best)))
        return out
