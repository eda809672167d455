"""Symmetric calibration: average both orders of a pair (duoT5 "Sym-Sum").

Formulas and sources: docs/references.md#symmetric.
"""

from __future__ import annotations

from ..comparisons import Comparisons
from .pairs import ordered_pair_stats, rows_from_stats


def symmetric(comparisons: Comparisons) -> Comparisons:
    """p*(a, b) = (p(a, b) + 1 - p(b, a)) / 2 for pairs seen in both orders; one-order pairs unchanged.

    Pradeep, Nogueira, Lin (2021), "The Expando-Mono-Duo Design Pattern for Text Ranking with
    Pretrained Sequence-to-Sequence Models". Repeated rows of the same ordered pair are averaged first.
    """
    s = ordered_pair_stats(comparisons)
    both_p = (s.p_fwd + 1.0 - s.p_bwd) / 2.0
    return rows_from_stats(comparisons.n_items, s, both_p, s.p_fwd, s.p_bwd)
