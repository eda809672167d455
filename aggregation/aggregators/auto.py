"""``auto``: the aggregator measured best for the comparator's regime, read from the raw comparisons."""

from __future__ import annotations

from typing import Any

from ..calibration.diagnostics import Diagnostics, diagnose
from ..comparisons import AggregateResult, Comparisons
from . import AGGREGATORS  # through the lazy table: importing a submodule by name would shadow its function

#: A comparator is consistent when its decided triads are (almost) never cyclic and, where pairs were seen in
#: both orders, it (almost) never prefers the same slot twice: MiniLM on DL19 has 0 and 0 over all pairs of the
#: BM25 top 50, ``oracle:noise=3,bias=1`` 0.14 and 0.43 (bench/results/budgets, summary.md).
MAX_TRANSITIVE = 0.02
MAX_ORDER = 0.05
#: Fewer decided triads say nothing: the regime stays ``noisy`` (the safe aggregator for both).
MIN_TRIADS = 10

#: The aggregator per regime (docs/benchmarks.md, "Defaults").
FOR_REGIME = {"consistent": "bt", "noisy": "hodgerank"}
#: Whether the first-stage prior stays on per regime: a consistent comparator needs no prior once it has made
#: enough comparisons to show it is consistent (MiniLM on DL19 at 10% of the pairs, seeds 0-4: Bradley-Terry
#: 0.6283 without the prior, 0.6246 with it; the prior keeps its floor below that, where the regime is unknown).
PRIOR_FOR_REGIME = {"consistent": False, "noisy": True}


def regime(diagnostics: Diagnostics) -> str:
    """``consistent`` or ``noisy`` from the diagnostics of the raw comparisons (before calibration)."""
    consistent = (diagnostics.decided_triads >= MIN_TRIADS and diagnostics.transitive_inconsistency <= MAX_TRANSITIVE
                  and (diagnostics.both_order_pairs == 0 or diagnostics.order_inconsistency <= MAX_ORDER))
    return "consistent" if consistent else "noisy"


def auto(comparisons: Comparisons, *, diagnostics: Diagnostics | None = None, **options: Any) -> AggregateResult:
    """Bradley-Terry (:func:`~.bt.bradley_terry`) for a consistent comparator, HodgeRank (:func:`~.hodgerank.hodgerank`)
    for a noisy one; the regime is :func:`regime` of ``diagnostics`` (the engine passes those of the raw answers,
    since calibration and the first-stage prior change the rows, and also drops the prior for a consistent
    comparator: :data:`PRIOR_FOR_REGIME`), else of ``comparisons`` themselves.

    The choice follows ``rerank bench budgets`` on DL19 (docs/benchmarks.md, "Defaults"): HodgeRank with the prior
    is the best for the noisy oracle at every budget, Bradley-Terry without it for MiniLM (not the default: on CISI
    the prior helps MiniLM). ``options`` go to the chosen aggregator.
    """
    chosen = FOR_REGIME[regime(diagnostics if diagnostics is not None else diagnose(comparisons))]
    return AGGREGATORS[chosen](comparisons, **options)
