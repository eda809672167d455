"""Scores a threshold can use: the same number means the same thing in every request.

A pairwise ranking's latent scores (Bradley-Terry log-strengths, HodgeRank potentials) are defined up to a
shift per request, and a min-max scaling of them makes every request's best document 1.0 even when none is
relevant. The score returned instead (``relevance_score`` of the Cohere/Jina shapes, TEI's ``score``,
``SCORE_FORMAT_NORMALIZED``) is

1. anchored to an absolute scale where a model of the request has one (:data:`ABSOLUTE_SCALES`): a
   bi-encoder's cosine of query and passage, a mono model's probability of relevance (the sigmoid of its
   logit or log-odds); in a cascade, the first stage whose model has one (typically the pointwise stage);
2. for a pairwise-only model ranked by ``bt`` or ``hodgerank``: the probability that the candidate beats a
   typical candidate of the request under the fitted Bradley-Terry model, mean over j != i of
   sigmoid(s_i - s_j) (:func:`beat_typical`), a number in (0, 1) with 0.5 for an average candidate; with
   another aggregator or fused models without a scale: 1 - position / (n - 1);
3. made monotone along the returned ranking by isotonic regression (the non-increasing sequence closest in
   squared error to the anchor, taken in ranking order: scipy's pool-adjacent-violators), so a higher score
   never sits below a lower one; equal texts, which the pipeline ranks as one item, get their mean.

Where the ranking agrees with the anchor (a bi-encoder's own ranking) the score is the anchor itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import isotonic_regression


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -500.0, 500.0)))


#: Model kind -> its per-passage score (``model.score``) on an absolute scale.
ABSOLUTE_SCALES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bi-encoder": lambda cosine: cosine,
    "mono-cross-encoder": _sigmoid,
    "mono-t5": _sigmoid,
}

#: A threshold for minilm (all-MiniLM-L6-v2, cosine scale) between an answering and a non-answering top
#: document: on DL19 (bench/results/threshold_scores.md) the top-1 score of every judged query is above it, and
#: texts about another topic score below it (tests/test_scores.py).
MINILM_THRESHOLD = 0.3

#: Aggregators whose scores are Bradley-Terry log-strengths (differences are log-odds of winning).
LOG_STRENGTH_AGGREGATORS = frozenset({"bt", "hodgerank"})


def beat_typical(latent: np.ndarray) -> np.ndarray:
    """P(i beats a candidate drawn uniformly from the others) under Bradley-Terry with log-strengths
    ``latent``: mean over j != i of sigmoid(s_i - s_j) (0.5 for a single candidate)."""
    s = np.asarray(latent, dtype=np.float64)
    n = len(s)
    if n < 2:
        return np.full(n, 0.5)
    wins = _sigmoid(s[:, None] - s[None, :])
    return (wins.sum(axis=1) - 0.5) / (n - 1)


def by_position(order: Sequence[int]) -> np.ndarray:
    """1 - position / (n - 1) by request position (1 for a single candidate)."""
    n = len(order)
    out = np.empty(n, dtype=np.float64)
    out[np.asarray(order, dtype=np.int64)] = 1.0 - np.arange(n) / max(n - 1, 1)
    return out


def threshold_scores(order: Sequence[int], anchor: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Scores by request position: the isotonic (non-increasing along ``order``) fit of ``anchor``, each
    equal-text ``group`` (adjacent in ``order``) given its mean."""
    idx = np.asarray(order, dtype=np.int64)
    fitted = isotonic_regression(np.asarray(anchor, dtype=np.float64)[idx], increasing=False).x
    out = np.empty(len(idx), dtype=np.float64)
    out[idx] = fitted
    groups = np.asarray(group, dtype=np.int64)
    sums = np.bincount(groups, weights=out)
    counts = np.bincount(groups)
    return sums[groups] / counts[groups]
