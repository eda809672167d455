"""Order calibration: correct the slot (position) bias of a pairwise model."""

from collections.abc import Callable

from ..comparisons import Comparisons
from .bias import estimate_slot_bias, position_bias
from .diagnostics import Diagnostics, diagnose, order_inconsistency, transitive_inconsistency
from .logodds import logodds
from .none import no_calibration
from .prp import prp_vote
from .symmetric import symmetric

CALIBRATIONS: dict[str, Callable[[Comparisons], Comparisons]] = {
    "none": no_calibration,
    "symmetric": symmetric,
    "logodds": logodds,
    "bias": position_bias,
    "prp": prp_vote,
}

__all__ = [
    "CALIBRATIONS",
    "Diagnostics",
    "diagnose",
    "estimate_slot_bias",
    "logodds",
    "no_calibration",
    "order_inconsistency",
    "position_bias",
    "prp_vote",
    "symmetric",
    "transitive_inconsistency",
]
