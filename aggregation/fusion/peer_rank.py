"""Peer-rank fusion: each judge's ranking weighs by its agreement with the other judges, iterated (PRD)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..comparisons import AggregateResult
from ._common import check_rankings


@dataclass(frozen=True)
class WeightedFusion(AggregateResult):
    """A fused ranking with the weight found for each judge (input ranking), summing to 1."""

    weights: np.ndarray | None = None


def _orders(rankings: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """``S[r, i, j]`` = +1 where ranking r puts i above j, -1 below, 0 where it says nothing (both absent).

    A partial ranking is a top-m list, as in :func:`~.kemeny.pairwise_counts`."""
    S = np.zeros((len(rankings), n_items, n_items), dtype=np.int8)
    for k, r in enumerate(rankings):
        pos = np.full(n_items, len(r))
        pos[r] = np.arange(len(r))
        S[k] = np.sign(pos[None, :] - pos[:, None])
    return S


def agreement_matrix(rankings: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """``A[r, s]`` = the share of item pairs both rankings order on which they agree (1 on the diagonal;
    0.5 where they share no ordered pair, i.e. no evidence either way)."""
    checked = check_rankings(rankings, n_items)
    S = _orders(checked, n_items).reshape(len(checked), -1).astype(np.float64)
    both = (S != 0).astype(np.float64)
    shared = both @ both.T
    agree = (S @ S.T + shared) / 2.0  # concordant pairs: (concordant - discordant + shared) / 2
    A = np.full(shared.shape, 0.5)
    np.divide(agree, shared, out=A, where=shared > 0)
    return A


def peer_rank_weights(A: np.ndarray, *, max_iter: int = 200, tol: float = 1e-12) -> np.ndarray:
    """The fixed point of ``w_r ∝ max(0, 2 * sum_{s != r} w_s A[r, s] / sum_{s != r} w_s - 1)``.

    Source: peer rank (PR) of Li, Patel and Du (2023), "PRD: Peer Rank and Discussion Improve Large Language
    Model based Evaluations" (docs/references.md#peer-rank-fusion): judges are weighted by their standing among
    their peers, and the weights are iterated until they settle, so a judge that agrees with well-weighted judges
    gains weight. Here a judge's standing is its agreement with the others weighted by their current weights,
    taken above chance (a Kendall-tau-like ``2 * agreement - 1``, clipped at 0: a judge no better than a coin,
    or worse, gets no weight). The iteration starts from PR's first step (weights proportional to the mean
    agreement with the others), so that two judges facing one contrarian are not left at chance by equal weights.
    With one judge, or where every judge is at chance, the weights are equal.
    """
    m = A.shape[0]
    w = np.full(m, 1.0 / m)
    if m < 2:
        return w
    off = ~np.eye(m, dtype=bool)
    first = (A * off).sum(axis=1)
    if first.sum() > 0:
        w = first / first.sum()
    for _ in range(max_iter):
        peers = (A * off) @ w / np.maximum(off @ w, 1e-300)
        standing = np.clip(2.0 * peers - 1.0, 0.0, None)
        if standing.sum() <= 0:
            return np.full(m, 1.0 / m)
        new = standing / standing.sum()
        if np.max(np.abs(new - w)) <= tol:
            return new
        w = new
    return w


def peer_rank_fusion(rankings: Sequence[np.ndarray], n_items: int, *, max_iter: int = 200) -> WeightedFusion:
    """Weighted Borda fusion with each ranking's weight from :func:`peer_rank_weights` (PRD peer rank).

    Source: Li, Patel and Du (2023), PRD, docs/references.md#peer-rank-fusion. Equal weights give plain Borda
    fusion (:func:`~.borda.borda_fusion`): the item at 0-based position p of a ranking gets ``n_items - p`` points
    times the ranking's weight. Rankings may be partial (top-m lists; an item absent from a ranking gets no
    credit from it). ``weights`` (one per ranking, in input order, summing to 1) are returned with the scores.
    """
    checked = check_rankings(rankings, n_items)
    if not checked:
        return WeightedFusion(scores=np.zeros(n_items), weights=np.zeros(0))
    w = peer_rank_weights(agreement_matrix(checked, n_items), max_iter=max_iter)
    scores = np.zeros(n_items)
    for weight, r in zip(w, checked, strict=True):
        scores[r] += weight * (n_items - np.arange(len(r), dtype=np.float64))
    return WeightedFusion(scores=scores, weights=w)
