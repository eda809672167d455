"""K-wise engine: model calls that show K candidates and answer a distribution over them (setwise prompting,
K-wise votes): observations, samplers (setwise heapsort/bubblesort as llm-rankers, budgeted random and active),
K-slot calibration and aggregation (Plackett-Luce by choix, or any pairwise aggregator over implied pairs).

Registered in :mod:`..registry` as kinds ``kwise_sampler``, ``kwise_calibration`` and ``kwise_aggregator``
(``plackett-luce``, and ``pairs:NAME`` for each pairwise aggregator NAME through the implied pairs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..lazy import LazyTable, lazy_exports

_EXPORTS = {
    "KwiseObservations": "observations:KwiseObservations",
    "plackett_luce": "plackett_luce:plackett_luce",
    "run_kwise_sampler": "samplers:run_kwise_sampler",
    "KwiseOutcome": "samplers:KwiseOutcome",
    "calibrate_slots": "calibration:calibrate_slots",
    "slot_weights": "calibration:slot_weights",
}

KWISE_SAMPLERS = LazyTable(__name__, {
    "setwise-heapsort": "samplers:setwise_heapsort",
    "setwise-bubblesort": "samplers:setwise_bubblesort",
    "kwise-random": "samplers:kwise_random",
    "kwise-active": "samplers:kwise_active",
})

KWISE_CALIBRATIONS = LazyTable(__name__, {
    "none": "calibration:no_calibration",
    "slot": "calibration:calibrate_slots",
})


def through_pairs(aggregator: Callable[..., Any]) -> Callable[..., Any]:
    """A pairwise aggregator applied to the calls' implied pairs (Luce's P_i / (P_i + P_j), see observations)."""

    def aggregate(observations: Any, **options: Any) -> Any:
        return aggregator(observations.implied_pairs(), **options)

    aggregate.__name__ = f"pairs_{getattr(aggregator, '__name__', 'aggregator')}"
    return aggregate


class _KwiseAggregators(LazyTable):
    """``plackett-luce`` plus ``pairs:NAME`` for every pairwise aggregator NAME (looked up lazily)."""

    def __init__(self) -> None:
        from ..aggregators import AGGREGATORS

        self._pairwise = AGGREGATORS
        super().__init__(__name__, {"plackett-luce": "plackett_luce:plackett_luce",
                                    **{f"pairs:{name}": "" for name in AGGREGATORS}})

    def __getitem__(self, name: str) -> Callable[..., Any]:
        if name.startswith("pairs:") and name[6:] in self._pairwise:
            return through_pairs(self._pairwise[name[6:]])
        return super().__getitem__(name)


KWISE_AGGREGATORS = _KwiseAggregators()

__getattr__ = lazy_exports(__name__, _EXPORTS)
