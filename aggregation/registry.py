"""The one registry: every sampler, calibration, aggregator and fusion method, found by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .aggregators import AGGREGATORS
from .arena import ARENA_METHODS
from .calibration import CALIBRATIONS
from .fusion import FUSIONS
from .kwise import KWISE_AGGREGATORS, KWISE_CALIBRATIONS, KWISE_SAMPLERS
from .samplers import SAMPLERS

#: Request defaults, the best configuration measured (docs/benchmarks.md, "Defaults"; see rerank.pipeline).
DEFAULT_SAMPLER = "auto"
DEFAULT_AGGREGATOR = "hodgerank"
DEFAULT_CALIBRATION = "symmetric"
DEFAULT_PRIOR_WEIGHT = 1.0

#: Aggregators that are a published method's own aggregation: ``sum`` is duoBERT's Sum; ``borda`` after
#: calibration ``symmetric`` is duoT5's Sym-Sum and after ``prp`` PRP's all-pair wins. Named, they give the
#: reference's order: the first-stage prior is off for them unless a prior weight is asked for.
REFERENCE_AGGREGATORS = frozenset({"sum", "borda"})


def default_prior_weight(aggregator: str) -> float:
    """The first-stage prior weight a request gets when it names none."""
    return 0.0 if aggregator in REFERENCE_AGGREGATORS else DEFAULT_PRIOR_WEIGHT


#: Aggregators that read which slot each answer came from, so only raw rows (calibration ``none``) make sense:
#: a calibrated row merges both orders of a pair.
RAW_ROW_AGGREGATORS = frozenset({"sum"})


def calibration_conflict(aggregator: str, calibration: str) -> str | None:
    """Why ``aggregator`` cannot run after ``calibration`` (None when it can)."""
    if aggregator in RAW_ROW_AGGREGATORS and calibration != "none":
        return (f"aggregator {aggregator!r} (duoBERT's first-slot sum) reads which slot each answer came from "
                f"and needs calibration 'none' (a calibrated row merges both orders), got {calibration!r}")
    return None

REGISTRY: Mapping[str, Mapping[str, Callable[..., Any]]] = {
    "sampler": SAMPLERS,
    "calibration": CALIBRATIONS,
    "aggregator": AGGREGATORS,
    "fusion": FUSIONS,
    "arena": ARENA_METHODS,
    "kwise_sampler": KWISE_SAMPLERS,
    "kwise_calibration": KWISE_CALIBRATIONS,
    "kwise_aggregator": KWISE_AGGREGATORS,
}


class UnknownMethodError(ValueError):
    """A method name that is not in the registry; the message lists the known names."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        known = ", ".join(sorted(REGISTRY[kind]))
        super().__init__(f"unknown {kind} {name!r}; known: {known}")


def lookup(kind: str, name: str) -> Callable[..., Any]:
    """Return the method ``name`` of ``kind`` (a key of ``REGISTRY``: 'sampler', 'aggregator', 'arena', ...)."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown method kind {kind!r}; known: {', '.join(REGISTRY)}")
    table = REGISTRY[kind]
    if name not in table:
        raise UnknownMethodError(kind, name)
    return table[name]


def names(kind: str) -> list[str]:
    """Sorted method names of one kind."""
    return sorted(REGISTRY[kind])
