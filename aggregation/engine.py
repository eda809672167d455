"""Comparisons in, ranking out: calibration, diagnostics and aggregation in one call."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from .aggregators.auto import FOR_REGIME, PRIOR_FOR_REGIME, regime
from .calibration import Diagnostics, diagnose
from .comparisons import Comparisons
from .prior import first_stage_prior
from .registry import lookup
from .threads import small_solve_threads


@dataclass(frozen=True)
class RankingReport:
    """A ranking (item indices best first) with per-item scores, optional standard errors and diagnostics."""

    order: np.ndarray
    scores: np.ndarray  # per item index
    stderr: np.ndarray | None
    comparisons: int  # model calls behind the ranking
    diagnostics: Diagnostics
    method: str
    calibration: str


@small_solve_threads
def aggregate(
    comparisons: Comparisons,
    method: str = "bt",
    calibration: str = "symmetric",
    *,
    seed: int | None = None,
    prior_weight: float = 0.0,
    **options: Any,
) -> RankingReport:
    """Calibrate ``comparisons``, aggregate them with ``method`` and report the diagnostics of the raw set.

    ``method="auto"`` picks the aggregator for the regime of the raw answers, and keeps the prior only for a
    noisy comparator (:mod:`.aggregators.auto`); the report's ``method`` names the aggregator that ran.

    ``seed`` reaches the aggregators that draw random numbers (kwiksort) and is ignored by the others;
    ``options`` go to the aggregator as they are (e.g. ``alpha`` for bt). ``prior_weight > 0`` appends
    the first-stage prior (:func:`first_stage_prior`) after calibration; it never counts as comparisons.
    BLAS runs on the thread count the engine picks for the problem size (:mod:`.threads`), whatever the
    environment says.
    Raises ``UnknownMethodError`` (a ``ValueError``) for an unknown method or calibration.
    """
    lookup("aggregator", method)
    calibrate = lookup("calibration", calibration)
    diagnostics = diagnose(comparisons)
    if method == "auto":  # the regime is read from the raw answers, before calibration and the prior
        found = regime(diagnostics)
        method = FOR_REGIME[found]
        prior_weight = prior_weight if PRIOR_FOR_REGIME[found] else 0.0
    aggregator = lookup("aggregator", method)
    if seed is not None and "seed" in inspect.signature(aggregator).parameters:
        options["seed"] = seed
    calibrated = calibrate(comparisons)
    if prior_weight:
        prior = first_stage_prior(comparisons.n_items, prior_weight)
        calibrated = Comparisons.concat(comparisons.n_items, [calibrated, prior])
    result = aggregator(calibrated, **options)
    order = result.ranking()
    return RankingReport(
        order=order,
        scores=np.asarray(result.scores, dtype=np.float64),
        stderr=None if result.stderr is None else np.asarray(result.stderr, dtype=np.float64),
        comparisons=comparisons.model_calls,
        diagnostics=diagnostics,
        method=method,
        calibration=calibration,
    )
