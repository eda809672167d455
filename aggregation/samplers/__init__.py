"""Comparison samplers: which pairs to send to the model, in which rounds, within a budget.

``SAMPLERS`` maps the method names to the sampler functions (protocol and driver in :mod:`.base`).
Default order per sampler: ``all`` asks both orders (``auto`` too when it runs ``all``); every other
sampler asks one order with a random slot assignment unless ``both_orders=True``.
"""

from .active import active
from .all_pairs import all_pairs
from .auto import auto
from .base import Pair, Sampler, SamplerReport, SamplerRun, SamplingOutcome, run_sampler
from .heapsort import heapsort
from .quicksort import quicksort
from .random_pairs import random_pairs
from .refine import refine
from .sliding import sliding
from .window import skip_window, window

SAMPLERS: dict[str, Sampler] = {
    "auto": auto,
    "all": all_pairs,
    "random": random_pairs,
    "window": window,
    "skip": skip_window,
    "heapsort": heapsort,
    "quicksort": quicksort,
    "sliding": sliding,
    "active": active,
    "refine": refine,
}

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
    "active",
    "all_pairs",
    "auto",
    "heapsort",
    "quicksort",
    "random_pairs",
    "refine",
    "run_sampler",
    "skip_window",
    "sliding",
    "window",
]
