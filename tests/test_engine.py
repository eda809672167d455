"""The registry and the engine's one-call aggregate."""

from __future__ import annotations

import numpy as np
import pytest

from rerank.aggregation import Comparisons, resolve_budget
from rerank.aggregation.engine import aggregate
from rerank.aggregation.registry import REGISTRY, UnknownMethodError, lookup, names


def test_registry_has_every_method_the_issue_names() -> None:
    assert set(names("sampler")) >= {"all", "random", "window", "skip", "heapsort", "quicksort", "sliding",
                                     "active"}
    assert set(names("calibration")) >= {"none", "symmetric", "logodds", "bias"}
    assert set(names("aggregator")) >= {"borda", "ebc", "bt", "greedy", "pagerank", "kwiksort", "copeland"}
    assert set(names("fusion")) >= {"borda", "rrf", "kemeny"}
    for kind, table in REGISTRY.items():
        for name in table:
            assert callable(lookup(kind, name))


def test_unknown_method_names_the_known_ones() -> None:
    with pytest.raises(UnknownMethodError, match=r"unknown aggregator 'nope'; known: .*borda.*bt"):
        lookup("aggregator", "nope")
    with pytest.raises(ValueError, match="unknown method kind"):
        lookup("colour", "red")


def test_aggregate_reports_stderr_for_bt_only_and_counts_model_calls() -> None:
    comps = Comparisons.from_triples(3, [(0, 1, 0.9), (1, 0, 0.2), (1, 2, 0.8), (2, 1, 0.3), (0, 2, 0.7)])
    report = aggregate(comps, method="bt", calibration="symmetric")
    assert list(report.order) == [0, 1, 2]
    assert report.stderr is not None and np.all(np.isfinite(report.stderr))
    assert report.comparisons == 5
    assert aggregate(comps, method="borda").stderr is None


def test_seed_reaches_only_randomised_aggregators() -> None:
    comps = Comparisons.from_triples(3, [(0, 1, 0.9), (1, 2, 0.8), (0, 2, 0.7)])
    for method in names("aggregator"):
        assert sorted(aggregate(comps, method=method, seed=7).order) == [0, 1, 2]


@pytest.mark.parametrize(
    ("budget", "expected"),
    [(None, 90), (0, 0), (15, 15), (1.0, 90), (0.1, 9), (0.33, 29), (200, 200), (1, 1)],
)
def test_resolve_budget(budget: int | float | None, expected: int) -> None:
    assert resolve_budget(10, budget) == expected


@pytest.mark.parametrize("budget", [-1, -0.5, 0.0, float("nan"), float("inf"), 2.5, True])
def test_resolve_budget_rejects(budget: float) -> None:
    with pytest.raises(ValueError, match="budget"):
        resolve_budget(10, budget)


def test_comparisons_validate_their_input() -> None:
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        Comparisons.from_triples(2, [(0, 1, 1.5)])
    with pytest.raises(ValueError, match="out of range"):
        Comparisons.from_triples(2, [(0, 2, 0.5)])
    with pytest.raises(ValueError, match="itself"):
        Comparisons.from_triples(2, [(1, 1, 0.5)])


def test_first_stage_prior_is_not_counted_and_yields_to_real_comparisons() -> None:
    from rerank.aggregation.prior import first_stage_prior

    assert len(first_stage_prior(5, 0.0)) == 0
    prior = first_stage_prior(5, 1.0, span=2)
    assert sorted(zip(prior.a.tolist(), prior.b.tolist(), strict=True)) == [
        (0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]
    # no comparisons at all: the prior alone gives the first-stage order
    empty = Comparisons.empty(5)
    assert list(aggregate(empty, method="bt", prior_weight=1.0).order) == [0, 1, 2, 3, 4]
    # strong evidence that 4 beats everyone outweighs the prior; counts stay model calls only
    rows = [(4, j, 0.99) for j in range(4)] + [(j, 4, 0.01) for j in range(4)]
    report = aggregate(Comparisons.from_triples(5, rows), method="bt", prior_weight=1.0)
    assert report.order[0] == 4 and report.comparisons == 8
    with pytest.raises(ValueError, match="prior weight"):
        first_stage_prior(3, -1.0)
