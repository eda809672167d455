"""No calibration: the model's answers as they are."""

from __future__ import annotations

from ..comparisons import Comparisons


def no_calibration(comparisons: Comparisons) -> Comparisons:
    """Return the comparisons unchanged."""
    return comparisons
