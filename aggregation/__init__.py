"""The ranking engine: comparison sampling, order calibration and aggregation (no model inside)."""

from .comparisons import AggregateResult, Comparisons, check_budget, minimum_budget, resolve_budget

__all__ = ["AggregateResult", "Comparisons", "check_budget", "minimum_budget", "resolve_budget"]
