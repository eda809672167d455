"""PRP all-pair voting: a pair is won only when both orders agree. Formulas and sources: docs/references.md#prp-vote."""

from __future__ import annotations

import numpy as np

from ..comparisons import Comparisons
from .pairs import ordered_pair_stats, rows_from_stats


def prp_vote(comparisons: Comparisons) -> Comparisons:
    """Binarise each order at 0.5; both orders agree -> 1 or 0, a conflict -> 0.5 (half a win each).

    Qin et al. (2023), "Large Language Models are Effective Text Rankers with Pairwise Ranking
    Prompting". One-order pairs are binarised as they are.
    """
    s = ordered_pair_stats(comparisons)
    fwd = (s.p_fwd > 0.5).astype(float) + 0.5 * (s.p_fwd == 0.5)
    bwd_for_lo = (s.p_bwd < 0.5).astype(float) + 0.5 * (s.p_bwd == 0.5)
    both_p = np.where(fwd == bwd_for_lo, fwd, 0.5)
    bwd = (s.p_bwd > 0.5).astype(float) + 0.5 * (s.p_bwd == 0.5)
    return rows_from_stats(comparisons.n_items, s, both_p, fwd, bwd)
