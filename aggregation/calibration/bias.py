"""Position-bias estimation: learn the slot bias from pairs seen in both orders, remove it everywhere."""

from __future__ import annotations

import numpy as np

from ..comparisons import Comparisons, sigmoid
from .pairs import OrderedPairStats, ordered_pair_stats, rows_from_stats


def estimate_slot_bias(stats: OrderedPairStats) -> float:
    """beta = mean over pairs seen in both orders of (logit p(a, b) + logit p(b, a)) / 2; 0 if none.

    Under p(a, b) = sigmoid(s_a - s_b + beta) every such pair gives exactly beta.
    """
    both = stats.both
    if not np.any(both):
        return 0.0
    return float(np.mean((stats.logit_fwd[both] + stats.logit_bwd[both]) / 2.0))


def position_bias(comparisons: Comparisons) -> Comparisons:
    """Subtract the estimated slot bias in logit space from every comparison.

    Pairs seen in both orders become sigmoid((logit p(a, b) - logit p(b, a)) / 2) (the bias cancels);
    one-order pairs become sigmoid(logit p(a, b) - beta). This lets a sparse run that sees most pairs
    in one order only still be debiased (see docs/references.md#position-bias).
    """
    s = ordered_pair_stats(comparisons)
    beta = estimate_slot_bias(s)
    both_p = sigmoid((s.logit_fwd - s.logit_bwd) / 2.0)
    return rows_from_stats(comparisons.n_items, s, both_p, sigmoid(s.logit_fwd - beta),
                           sigmoid(s.logit_bwd - beta))
