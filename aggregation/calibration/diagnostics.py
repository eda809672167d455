"""Consistency diagnostics reported with every ranking. Formulas and sources: docs/references.md#diagnostics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..comparisons import Comparisons
from .bias import estimate_slot_bias
from .pairs import ordered_pair_stats


@dataclass(frozen=True)
class Diagnostics:
    """Order and transitive inconsistency of a comparison set, with the counts behind the rates."""

    order_inconsistency: float  # share of pairs seen in both orders where the same slot won twice
    both_order_pairs: int
    transitive_inconsistency: float  # share of fully decided triads that are cyclic
    decided_triads: int
    slot_bias: float  # estimated first-slot bias in logit units (0 when no pair was seen in both orders)


def order_inconsistency(comparisons: Comparisons) -> tuple[float, int]:
    """Rate of pairs, among those seen in both orders, where the model preferred the same slot both times.

    The model is order-inconsistent on {a, b} when it prefers a in (a, b) and b in (b, a), or the
    second slot both times. Returns (rate, number of pairs seen in both orders); rate 0 when none.
    """
    s = ordered_pair_stats(comparisons)
    both = s.both
    n = int(both.sum())
    if n == 0:
        return 0.0, 0
    same_slot = (s.p_fwd[both] - 0.5) * (s.p_bwd[both] - 0.5) > 0
    return float(same_slot.mean()), n


def transitive_inconsistency(comparisons: Comparisons) -> tuple[float, int]:
    """Share of cyclic triads (a > b, b > c, c > a) among the triads whose three pairs are all decided.

    A pair is decided when its mean preference over all rows (both orders pooled) differs from 0.5.
    Counts via traces of matrix cubes: cycles = tr(D^3) / 3, decided triads = tr(U^3) / 6 (closed form
    when every pair is decided).
    Returns (rate, number of decided triads).
    """
    n = comparisons.n_items
    if n < 3 or len(comparisons) == 0:
        return 0.0, 0
    P, seen = comparisons.preference_matrix()
    wins = seen & (P > 0.5)
    decided = wins | wins.T
    if int(decided.sum()) == n * (n - 1):
        # every pair decided (a tournament): Kendall and Babington Smith (1940), cyclic triads =
        # C(n, 3) - sum_i C(out_i, 2); no matrix products
        out = wins.sum(axis=1).astype(np.float64)
        triads = n * (n - 1) * (n - 2) / 6.0
        cycles = triads - float(np.sum(out * (out - 1.0) / 2.0))
        return cycles / triads, round(triads)
    # counts are integers below 2^24 in every product entry, so single precision is exact and twice as fast
    D = wins.astype(np.float32)
    U = decided.astype(np.float32)
    triads = float(np.einsum("ij,ij->", U @ U, U, dtype=np.float64)) / 6.0
    if triads < 0.5:
        return 0.0, 0
    cycles = float(np.einsum("ij,ji->", D @ D, D, dtype=np.float64)) / 3.0
    return cycles / triads, round(triads)


def diagnose(comparisons: Comparisons) -> Diagnostics:
    """All diagnostics for one comparison set (the raw model answers, before calibration)."""
    stats = ordered_pair_stats(comparisons)
    rate, pairs = order_inconsistency(comparisons)
    t_rate, triads = transitive_inconsistency(comparisons)
    return Diagnostics(rate, pairs, t_rate, triads, estimate_slot_bias(stats))
