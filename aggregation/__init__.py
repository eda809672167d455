"""The ranking engine: comparison sampling, order calibration and aggregation (no model inside)."""

from .comparisons import AggregateResult, Comparisons, resolve_budget

__all__ = ["AggregateResult", "Comparisons", "resolve_budget"]
