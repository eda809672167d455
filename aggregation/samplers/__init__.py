"""Comparison samplers: which pairs to send to the model, in which rounds, within a budget.

``SAMPLERS`` maps the method names to the sampler functions (protocol and driver in :mod:`.base`).
Default order per sampler: ``all`` asks both orders (``auto`` too when it runs ``all``); every other
sampler asks one order with a random slot assignment unless ``both_orders=True``. The sampler modules are
imported on first use (:mod:`..lazy`): ``active`` needs scipy, listing the names does not.
"""

from __future__ import annotations

from ..lazy import LazyTable, lazy_exports
from .base import Pair, Sampler, SamplerReport, SamplerRun, SamplingOutcome, run_sampler

_EXPORTS = {
    "auto": "auto:auto",
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
    "auto": _EXPORTS["auto"],
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

#: The request-level parameters each sampler takes (beside the budget, ``both_orders`` and the round limit
#: every sampler honours): ``window`` = window size m, ``skip`` = dilation lam, ``top_n`` = the positions a
#: sorting or focused sampler settles. A parameter given to a sampler that does not take it is an error.
SAMPLER_PARAMETERS: dict[str, frozenset[str]] = {
    "auto": frozenset({"top_n"}),
    "all": frozenset(),
    "random": frozenset(),
    "window": frozenset({"window"}),
    "skip": frozenset({"window", "skip"}),
    "heapsort": frozenset({"top_n"}),
    "quicksort": frozenset({"top_n"}),
    "sliding": frozenset({"top_n"}),
    "active": frozenset({"top_n"}),
    "refine": frozenset(),
}
#: Request parameter name -> the sampler function's keyword.
PARAMETER_KEYWORDS = {"window": "m", "skip": "lam", "top_n": "top_n"}

__all__ = [
    "PARAMETER_KEYWORDS",
    "SAMPLERS",
    "SAMPLER_PARAMETERS",
    "Pair",
    "Sampler",
    "SamplerReport",
    "SamplerRun",
    "SamplingOutcome",
    "run_sampler",
    *_EXPORTS,
]
