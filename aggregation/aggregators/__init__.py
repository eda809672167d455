"""Aggregators: turn a set of pairwise comparisons into per-item scores and a ranking.

Every aggregator is a pure, deterministic function ``(comparisons, *, options) -> AggregateResult``
whose result depends only on the content of the comparisons (not on the order of the rows), and whose
``ranking()`` is a permutation of ``range(n_items)``, items never compared included.

The modules are imported on first use (:mod:`..lazy`): listing the names costs no scipy import.
"""

from __future__ import annotations

from ..lazy import LazyTable, lazy_exports

_EXPORTS = {
    "borda": "borda:borda",
    "enhanced_borda": "ebc:enhanced_borda",
    "bradley_terry": "bt:bradley_terry",
    "DEFAULT_ALPHA": "bt:DEFAULT_ALPHA",
    "greedy": "greedy:greedy",
    "pagerank": "pagerank:pagerank",
    "kwiksort": "kwiksort:kwiksort",
    "copeland": "copeland:copeland",
    "hodgerank": "hodgerank:hodgerank",
    "first_slot_sum": "first_slot_sum:first_slot_sum",
    "auto": "auto:auto",
}

AGGREGATORS = LazyTable(__name__, {
    "borda": _EXPORTS["borda"],
    "ebc": _EXPORTS["enhanced_borda"],
    "bt": _EXPORTS["bradley_terry"],
    "greedy": _EXPORTS["greedy"],
    "pagerank": _EXPORTS["pagerank"],
    "kwiksort": _EXPORTS["kwiksort"],
    "copeland": _EXPORTS["copeland"],
    "hodgerank": _EXPORTS["hodgerank"],
    "sum": _EXPORTS["first_slot_sum"],
    "auto": _EXPORTS["auto"],
})

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["AGGREGATORS", *_EXPORTS]
