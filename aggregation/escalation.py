"""Selective escalation: the confidence threshold above which a cheap judge may answer, with a guarantee.

Source: Jung, Brahman and Choi (ICLR 2025), "Trust or Escalate: LLM Judges with Provable Guarantees for Human
Agreement" (code: jaehunjung1/cascaded-selective-evaluation); docs/references.md#selective-escalation.
A judge answers an item only where its confidence is at least a threshold lambda; lambda is chosen on a
calibration set (items with the reference answer: qrels, or the strong judge's own answers) by fixed-sequence
testing, so that the agreement with the reference on the items the judge keeps is at least ``1 - alpha`` with
probability at least ``1 - delta`` over the draw of the calibration set. The rest escalates to the next judge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import bdtr

#: The fixed sequence of thresholds, strictest first: confidences max(p, 1 - p) of a pairwise answer lie in
#: [0.5, 1]. The sequence is fixed before the agreement labels are seen, as fixed-sequence testing requires.
DEFAULT_THRESHOLDS = np.round(np.linspace(1.0, 0.5, 501), 6)
#: Thresholds that keep fewer calibration items are not tested (the reference code's "data for the top bin":
#: a handful of items can never certify a risk, and a failed test ends the sequence).
MIN_KEPT = 30


@dataclass(frozen=True)
class EscalationThreshold:
    """The calibrated threshold and the test behind it.

    ``threshold``: the cheap judge answers where its confidence is >= this; ``inf`` where no threshold passed
    the test (everything escalates). ``kept`` / ``disagreements``: calibration items at or above it and the
    ones among them that disagree with the reference; ``p_value``: the binomial p-value of the last threshold
    that passed (1.0 when none did)."""

    threshold: float
    alpha: float
    delta: float
    calibration_items: int
    kept: int
    disagreements: int
    p_value: float
    tested: int


def pair_confidence(p: np.ndarray) -> np.ndarray:
    """The confidence of pairwise answers p = P(a preferred to b): ``max(p, 1 - p)``, in [0.5, 1]."""
    p = np.asarray(p, dtype=np.float64)
    return np.maximum(p, 1.0 - p)


def binomial_p_value(disagreements: int, kept: int, alpha: float) -> float:
    """``P(Binomial(kept, alpha) <= disagreements)``: the p-value of H0 "the disagreement rate on the kept
    items exceeds alpha" (the exact binomial tail bound of Trust or Escalate). 1.0 when nothing is kept."""
    if kept <= 0:
        return 1.0
    return float(bdtr(disagreements, kept, alpha))  # = binom.cdf; scipy.stats would import far more


def fixed_sequence_threshold(
    confidence: np.ndarray, agrees: np.ndarray, alpha: float, delta: float, *,
    thresholds: np.ndarray = DEFAULT_THRESHOLDS, min_kept: int = MIN_KEPT,
) -> EscalationThreshold:
    """Fixed-sequence testing over ``thresholds`` (strictest first), as in Trust or Escalate, Algorithm 1.

    For each lambda in order: the calibration items with ``confidence >= lambda`` are kept; with ``k`` kept of
    which ``e`` disagree with the reference (``agrees`` false), H0(lambda): "risk(lambda) > alpha" is rejected
    when ``P(Binomial(k, alpha) <= e) <= delta``. Testing stops at the first lambda not rejected; the answer is the
    last rejected (the most lenient certified) lambda. Then P(agreement on kept items >= 1 - alpha) >= 1 - delta
    over calibration sets drawn from the test distribution (exchangeable items). A lambda that keeps fewer than
    ``min_kept`` items is not tested, as in the reference code (the sequence then depends on the confidences
    only, never on the agreement labels). Where the first tested lambda fails, the answer is ``inf`` (every item
    escalates; the reference code keeps that lambda instead, which drops the guarantee). Raises ``ValueError``
    on mismatched lengths, ``alpha`` or ``delta`` outside (0, 1), or thresholds not strictest first.
    """
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
    agrees = np.asarray(agrees, dtype=bool).reshape(-1)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if len(confidence) != len(agrees):
        raise ValueError(f"{len(confidence)} confidences for {len(agrees)} agreement labels")
    for name, value in (("alpha", alpha), ("delta", delta)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    if len(thresholds) and np.any(np.diff(thresholds) > 0):
        raise ValueError("thresholds must be given strictest (highest) first")
    best = EscalationThreshold(float("inf"), alpha, delta, len(confidence), 0, 0, 1.0, 0)
    tested = 0
    for lam in thresholds:
        keep = confidence >= lam
        kept = int(keep.sum())
        if kept < max(min_kept, 1):
            continue
        tested += 1
        errors = int(np.count_nonzero(~agrees[keep]))
        p_value = binomial_p_value(errors, kept, alpha)
        if p_value > delta:
            break
        best = EscalationThreshold(float(lam), alpha, delta, len(confidence), kept, errors, p_value, tested)
    return EscalationThreshold(best.threshold, alpha, delta, len(confidence), best.kept, best.disagreements,
                               best.p_value, tested)
