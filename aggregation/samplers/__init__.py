"""Comparison samplers: which pairs to send to the model, in which rounds, within a budget.

``SAMPLERS`` maps the method names to the sampler functions (protocol and driver in :mod:`.base`).
Default order per sampler: ``all`` asks both orders; every other sampler asks one order with a random
slot assignment unless ``both_orders=True``.
"""

from .active import active
from .all_pairs import all_pairs
from .base import Pair, Sampler, SamplerReport, SamplerRun, SamplingOutcome, run_sampler
from .heapsort import heapsort
from .quicksort import quicksort
from .random_pairs import random_pairs
from .refine import refine
from .sliding import sliding
from .window import skip_window, window

SAMPLERS: dict[str, Sampler] = {
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

__all__ = [
    "SAMPLERS",
    "Pair",
    "Sampler",
    "SamplerReport",
    "SamplerRun",
    "SamplingOutcome",
    "active",
    "all_pairs",
    "heapsort",
    "quicksort",
    "random_pairs",
    "refine",
    "run_sampler",
    "skip_window",
    "sliding",
    "window",
]
