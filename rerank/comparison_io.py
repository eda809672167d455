"""Reading comparison JSON lines (``{"a": id, "b": id, "p": float, "group": ...}``) into groups."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .aggregation import Comparisons
from .aggregation.engine import RankingReport, aggregate

ItemId = str | int


class InputError(ValueError):
    """Bad input, with the 1-based line number it was found on (0 when it concerns the whole input)."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}" if line else message)

    def __reduce__(self) -> tuple[type, tuple[int, str]]:  # picklable: raised in a Ray worker, re-raised here
        return type(self), (self.line, self.message)


@dataclass
class ComparisonGroup:
    """The comparisons of one group; items are indexed in the order they first appear."""

    group: Any
    ids: list[ItemId] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    a: list[int] = field(default_factory=list)
    b: list[int] = field(default_factory=list)
    p: list[float] = field(default_factory=list)

    def item(self, item_id: ItemId) -> int:
        key = json.dumps(item_id)
        if key not in self.index:
            self.index[key] = len(self.ids)
            self.ids.append(item_id)
        return self.index[key]

    def comparisons(self) -> Comparisons:
        return Comparisons(len(self.ids), np.array(self.a, np.int64), np.array(self.b, np.int64),
                           np.array(self.p, np.float64))


def _check_id(value: Any, key: str, line: int) -> ItemId:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(line, f'"{key}" must be a string or an integer id, got {json.dumps(value)}')
    if isinstance(value, str) and not value:
        raise InputError(line, f'"{key}" must not be an empty string')
    return value


def read_comparison_groups(lines: Iterable[str]) -> list[ComparisonGroup]:
    """Parse JSON lines into groups, in order of first appearance. Blank lines are skipped.

    Raises :class:`InputError` naming the line for malformed JSON, missing keys, bad ids,
    p outside [0, 1], or an item compared with itself; and for an input with no comparisons.
    """
    groups: dict[str, ComparisonGroup] = {}
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(number, f"not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(number, "expected a JSON object with keys a, b, p")
        for key in ("a", "b", "p"):
            if key not in row:
                raise InputError(number, f'missing key "{key}"')
        a = _check_id(row["a"], "a", number)
        b = _check_id(row["b"], "b", number)
        p = row["p"]
        if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p):
            raise InputError(number, f'"p" must be a number in [0, 1], got {json.dumps(p)}')
        if not 0.0 <= p <= 1.0:
            raise InputError(number, f'"p" must be in [0, 1], got {p}')
        group_value = row.get("group")
        if isinstance(group_value, bool) or not (group_value is None or isinstance(group_value, str | int)):
            shown = json.dumps(group_value)
            raise InputError(number, f'"group" must be a string, an integer or null, got {shown}')
        group_key = json.dumps(group_value)
        group = groups.get(group_key)
        if group is None:
            group = groups[group_key] = ComparisonGroup(group_value)
        if json.dumps(a) == json.dumps(b):
            raise InputError(number, f"item {json.dumps(a)} is compared with itself")
        group.a.append(group.item(a))
        group.b.append(group.item(b))
        group.p.append(float(p))
    if not groups:
        raise InputError(0, "input has no comparisons")
    return list(groups.values())


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
