"""Aggregators: turn a set of pairwise comparisons into per-item scores and a ranking.

Every aggregator is a pure, deterministic function ``(comparisons, *, options) -> AggregateResult``
whose result depends only on the content of the comparisons (not on the order of the rows), and whose
``ranking()`` is a permutation of ``range(n_items)``, items never compared included.
"""

from __future__ import annotations

from collections.abc import Callable

from ..comparisons import AggregateResult
from .borda import borda
from .bt import DEFAULT_ALPHA, bradley_terry
from .copeland import copeland
from .ebc import enhanced_borda
from .first_slot_sum import first_slot_sum
from .greedy import greedy
from .hodgerank import hodgerank
from .kwiksort import kwiksort
from .pagerank import pagerank

AGGREGATORS: dict[str, Callable[..., AggregateResult]] = {
    "borda": borda,
    "ebc": enhanced_borda,
    "bt": bradley_terry,
    "greedy": greedy,
    "pagerank": pagerank,
    "kwiksort": kwiksort,
    "copeland": copeland,
    "hodgerank": hodgerank,
    "sum": first_slot_sum,
}

__all__ = [
    "AGGREGATORS",
    "DEFAULT_ALPHA",
    "borda",
    "bradley_terry",
    "copeland",
    "enhanced_borda",
    "first_slot_sum",
    "greedy",
    "hodgerank",
    "kwiksort",
    "pagerank",
]
