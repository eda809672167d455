"""The one module that joins the engine (rerank.aggregation) with the rest; CLI and server call it."""

from __future__ import annotations

from typing import Any

from .aggregation.engine import RankingReport, aggregate
from .comparison_io import ComparisonGroup, ItemId


def ranking_record(report: RankingReport, ids: list[ItemId]) -> dict[str, Any]:
    """A ranking as a JSON-ready dict: ids, scores, ranks (and stderr where the aggregator gives it)."""
    ranking = []
    for rank, index in enumerate(report.order, start=1):
        entry: dict[str, Any] = {"id": ids[index], "score": float(report.scores[index]), "rank": rank}
        if report.stderr is not None:
            entry["stderr"] = float(report.stderr[index])
        ranking.append(entry)
    d = report.diagnostics
    return {
        "ranking": ranking,
        "comparisons": report.comparisons,
        "order_inconsistency": d.order_inconsistency,
        "both_order_pairs": d.both_order_pairs,
        "transitive_inconsistency": d.transitive_inconsistency,
        "slot_bias": d.slot_bias,
        "method": report.method,
        "calibration": report.calibration,
    }


def aggregate_group(group: ComparisonGroup, method: str, calibration: str, **options: Any) -> dict[str, Any]:
    """Rank one group of comparisons and return its output record."""
    report = aggregate(group.comparisons(), method=method, calibration=calibration, **options)
    return {"group": group.group, **ranking_record(report, group.ids)}
