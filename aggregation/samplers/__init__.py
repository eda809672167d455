"""Comparison samplers: which pairs to send to the model, in which rounds, within a budget.

``SAMPLERS`` maps the method names to the sampler functions (protocol and driver in :mod:`.base`).
Default order per sampler: ``all`` asks both orders; every other sampler asks one order with a random
slot assignment unless ``both_orders=True``. The sampler modules are imported on first use
(:mod:`..lazy`): ``active`` needs scipy, listing the names does not.
"""

from __future__ import annotations

from ..lazy import LazyTable, lazy_exports
from .base import Pair, Sampler, SamplerReport, SamplerRun, SamplingOutcome, run_sampler

_EXPORTS = {
    "all_pairs": "all_pairs:all_pairs",
    "random_pairs": "random_pairs:random_pairs",
    "window": "window:window",
    "skip_window": "window:skip_window",
    "heapsort": "heapsort:heapsort",
    "quicksort": "quicksort:quicksort",
    "sliding": "sliding:sliding",
    "active": "active:active",
    "refine": "refine:refine",
}

SAMPLERS = LazyTable(__name__, {
    "all": _EXPORTS["all_pairs"],
    "random": _EXPORTS["random_pairs"],
    "window": _EXPORTS["window"],
    "skip": _EXPORTS["skip_window"],
    "heapsort": _EXPORTS["heapsort"],
    "quicksort": _EXPORTS["quicksort"],
    "sliding": _EXPORTS["sliding"],
    "active": _EXPORTS["active"],
    "refine": _EXPORTS["refine"],
})

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "SAMPLERS",
    "Pair",
    "Sampler",
    "SamplerReport",
    "SamplerRun",
    "SamplingOutcome",
    "run_sampler",
    *_EXPORTS,
]
