"""Copeland aggregation (pairwise majority wins minus losses)."""

from __future__ import annotations

import numpy as np

from ..comparisons import AggregateResult, Comparisons
from ._common import TIE_TOL, preference, soft_tiebreak


def copeland(comparisons: Comparisons) -> AggregateResult:
    """Copeland score: per seen pair the winner on the mean preference gets a win, a tie half a win each.

    Source: Copeland's pairwise-majority rule as used for tournament aggregation; the binarisation on
    the pooled mean preference follows PRP allpair (Qin et al. 2023: a conflict between the two orders
    counts as half a win each). See docs/references.md#copeland.

    Score = wins - losses over the seen pairs (a tie adds 0), plus the soft Borda tie-break
    ``sum_j (P[i, j] - 1/2) / n`` in (-1/2, 1/2), so equal Copeland scores are ordered by the
    probabilities. Items never compared score 0 (neutral).
    """
    D, seen = preference(comparisons)
    if D.shape[0] == 0:
        return AggregateResult(scores=np.zeros(0))
    outcome = np.where(D > TIE_TOL, 1.0, np.where(D < -TIE_TOL, -1.0, 0.0))
    net = np.where(seen, outcome, 0.0).sum(axis=1)
    return AggregateResult(scores=net + soft_tiebreak(D, seen))
