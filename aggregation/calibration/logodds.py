"""Log-odds calibration of the two orders (LLM-RankFusion). Formulas and sources: docs/references.md#log-odds."""

from __future__ import annotations

from ..comparisons import Comparisons, sigmoid
from .pairs import ordered_pair_stats, rows_from_stats


def logodds(comparisons: Comparisons) -> Comparisons:
    """P(a > b) = sigmoid((logit p(a, b) - logit p(b, a)) / 2) for pairs seen in both orders.

    Zeng et al. (2024), "LLM-RankFusion: Mitigating Intrinsic Inconsistency in LLM-based Ranking":
    their code takes sigmoid(l(a, b) - l(b, a)) on the slot-A scores; on probabilities that is the
    difference of the two log-odds, which we halve so that a comparator with a pure slot bias,
    p(a, b) = sigmoid(s_a - s_b + beta), maps back exactly onto sigmoid(s_a - s_b).
    One-order pairs are passed through unchanged (nothing to cancel the bias against).
    """
    s = ordered_pair_stats(comparisons)
    both_p = sigmoid((s.logit_fwd - s.logit_bwd) / 2.0)
    return rows_from_stats(comparisons.n_items, s, both_p, s.p_fwd, s.p_bwd)
