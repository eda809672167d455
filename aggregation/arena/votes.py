"""Arena votes: pairwise battles (Chatbot Arena's shape) and K-wise votes, as one typed container.

A vote shows K >= 2 models and ranks them: ``rank`` 1 is best, equal ranks are ties. A Chatbot Arena battle
is a vote with K = 2 (``model_a`` first); a K-wise vote (K-Sort Arena) ranks K models in one go, and a
K-wise *choice* (one winner, the others tied behind it) is a ranking with two levels.

Pairwise estimators (Bradley-Terry, online Elo) read a K-wise vote through its *implied pairs*: every
pair of the K shown models, in display order, with the better-ranked one winning and equal ranks a tie
(a vote ranking K models yields K(K-1)/2 battles; a choice yields K-1 wins plus (K-1)(K-2)/2 ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Battle outcomes on ``model_a``'s side: 1 = model_a wins, 0 = model_b wins, 0.5 = a tie.
A_WINS, B_WINS, TIE = 1.0, 0.0, 0.5


@dataclass(frozen=True)
class Battles:
    """Pairwise battles in log order: ``a[t]`` met ``b[t]`` with ``outcome[t]`` on a's side (1, 0 or 0.5)."""

    models: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray

    def __len__(self) -> int:
        return len(self.a)

    def take(self, index: np.ndarray) -> Battles:
        """The battles at ``index`` (with repeats: a bootstrap resample), in that order."""
        return Battles(self.models, self.a[index], self.b[index], self.outcome[index])


@dataclass(frozen=True)
class Votes:
    """K-wise votes in log order, flat: vote v shows ``members[offsets[v]:offsets[v+1]]`` (model indexes into
    ``models``, display order) with ``ranks`` at the same places (1 = best, equal = tie)."""

    models: tuple[str, ...]
    members: np.ndarray
    ranks: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def vote(self, v: int) -> tuple[np.ndarray, np.ndarray]:
        """The models shown in vote ``v`` and their ranks."""
        lo, hi = int(self.offsets[v]), int(self.offsets[v + 1])
        return self.members[lo:hi], self.ranks[lo:hi]

    def implied_battles(self) -> Battles:
        """Every pair of each vote, in display order (i before j): the better rank wins, equal ranks tie."""
        sizes = np.diff(self.offsets)
        if len(sizes) and int(sizes.min()) == int(sizes.max()) == 2:  # all pairwise: one battle per vote
            first, second = self.offsets[:-1], self.offsets[:-1] + 1
            a, b = self.members[first], self.members[second]
            ra, rb = self.ranks[first], self.ranks[second]
        else:
            pos_a, pos_b = [], []
            for v in range(len(self)):
                lo, hi = int(self.offsets[v]), int(self.offsets[v + 1])
                i, j = np.triu_indices(hi - lo, k=1)
                pos_a.append(lo + i)
                pos_b.append(lo + j)
            first = np.concatenate(pos_a) if pos_a else np.zeros(0, dtype=np.int64)
            second = np.concatenate(pos_b) if pos_b else np.zeros(0, dtype=np.int64)
            a, b = self.members[first], self.members[second]
            ra, rb = self.ranks[first], self.ranks[second]
        outcome = np.where(ra < rb, A_WINS, np.where(ra > rb, B_WINS, TIE))
        return Battles(self.models, a.astype(np.int64), b.astype(np.int64), outcome)


def votes_from_lists(models: tuple[str, ...], shown: list[list[int]], ranks: list[list[int]]) -> Votes:
    """Build :class:`Votes` from per-vote lists of model indexes and ranks (same lengths, K >= 2 each)."""
    sizes = [len(s) for s in shown]
    if any(k < 2 for k in sizes) or sizes != [len(r) for r in ranks]:
        raise ValueError("every vote shows at least 2 models, with one rank per model")
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    flat = [m for s in shown for m in s]
    flat_ranks = [r for rr in ranks for r in rr]
    return Votes(models, np.asarray(flat, dtype=np.int64), np.asarray(flat_ranks, dtype=np.int64), offsets)
