"""Plackett-Luce strengths from K-wise calls, by choix's iterative Luce spectral ranking.

Each call is read as a top-1 choice (:meth:`KwiseObservations.top1`, llm-rankers' read-out of a setwise call):
the chosen item over the other K-1. Under Plackett-Luce (Luce 1959; Plackett 1975) P(i chosen from S) =
exp(theta_i) / sum_{j in S} exp(theta_j); ``choix.ilsr_top1`` (Maystre and Grossglauser 2015) finds the
maximum-likelihood theta, with ``alpha`` a small regulariser (choix's convention) that keeps items never chosen,
or never shown, finite. The soft mass beyond the argmax is what the implied-pairs route keeps
(:meth:`KwiseObservations.implied_pairs` + any pairwise aggregator).
"""

from __future__ import annotations

import numpy as np

from ..comparisons import AggregateResult
from .observations import KwiseObservations

#: choix's ``alpha``: enough to keep items that never won (or never appeared) finite, far below a call's weight.
DEFAULT_ALPHA = 0.01


def plackett_luce(observations: KwiseObservations, *, alpha: float = DEFAULT_ALPHA) -> AggregateResult:
    """Plackett-Luce log-strengths (mean zero) from the calls' top-1 choices."""
    import choix

    n = observations.n_items
    if len(observations) == 0 or n < 2:
        return AggregateResult(scores=np.zeros(n))
    theta = choix.ilsr_top1(n, observations.top1(), alpha=alpha)
    theta = np.asarray(theta, dtype=float)
    return AggregateResult(scores=np.round(theta - theta.mean(), 12) + 0.0)
