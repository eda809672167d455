"""K-slot position-bias calibration: the K-wise twin of the pairwise first-slot bias.

A setwise model may favour a slot (the first label, say) whatever it holds. Model: the answer over the K shown
slots is P_s proportional to exp(u_item(s) + b_s); with items assigned to slots without regard to relevance,
the mean answer at slot s over calls of the same K estimates softmax(b)_s, so ``w_s = K * mean_c P_c,s`` is
slot s's weight relative to a fair 1/K. Calibration divides each answer by w and renormalises, re-estimating
w until the calibrated slot means are fair (``slot``), and
``none`` leaves the answers as they are. The weights are estimated per K from the calls themselves; a slot
that never received probability keeps weight 1 (nothing to divide).
"""

from __future__ import annotations

import numpy as np

from .observations import KwiseObservations


def slot_weights(observations: KwiseObservations) -> dict[int, np.ndarray]:
    """``{K: w}`` with ``w_s = K * mean P at slot s`` over the calls showing K items (1 = no bias)."""
    sizes = observations.sizes()
    out: dict[int, np.ndarray] = {}
    for k in np.unique(sizes).tolist():
        rows = [observations.call(c)[1] for c in np.flatnonzero(sizes == k)]
        w = k * np.mean(rows, axis=0)
        out[int(k)] = np.where(w > 0, w, 1.0)
    return out


def _divide(observations: KwiseObservations, weights: dict[int, np.ndarray]) -> np.ndarray:
    probs = observations.probs.copy()
    for c in range(len(observations)):
        lo, hi = int(observations.offsets[c]), int(observations.offsets[c + 1])
        q = probs[lo:hi] / weights[hi - lo]
        probs[lo:hi] = q / q.sum() if q.sum() > 0 else np.full(hi - lo, 1.0 / (hi - lo))
    return probs


def calibrate_slots(observations: KwiseObservations, *, tol: float = 1e-6, max_iter: int = 100) -> KwiseObservations:
    """Answers with the slot bias divided out (``slot`` calibration). Renormalising each answer moves the slot
    means again, so the weights are re-estimated on the calibrated answers and multiplied in until every slot
    mean is fair (``|w - 1| < tol``; iterative proportional fitting)."""
    total = {k: np.ones(k) for k in slot_weights(observations)}
    current = observations
    for _ in range(max_iter):
        weights = slot_weights(current)
        if all(float(np.abs(w - 1.0).max()) < tol for w in weights.values()):
            break
        total = {k: total[k] * weights[k] for k in total}
        current = observations.with_probs(_divide(observations, total))
    return current


def no_calibration(observations: KwiseObservations) -> KwiseObservations:
    """The answers as the model gave them."""
    return observations
