"""Calibration and consistency diagnostics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank.aggregation import Comparisons
from rerank.aggregation.calibration import (
    CALIBRATIONS,
    diagnose,
    estimate_slot_bias,
    logodds,
    order_inconsistency,
    position_bias,
    symmetric,
    transitive_inconsistency,
)
from rerank.aggregation.calibration.pairs import ordered_pair_stats
from rerank.aggregation.comparisons import logit, sigmoid
from rerank.aggregation.registry import AGGREGATORS, RAW_ROW_AGGREGATORS

CALIB_TOL = 1e-9


def biased_comparator(strengths: np.ndarray, beta: float, pairs: list[tuple[int, int]]) -> Comparisons:
    """p(a, b) = sigmoid(s_a - s_b + beta): a pure first-slot bias of beta logits."""
    a = np.array([x for x, _ in pairs])
    b = np.array([y for _, y in pairs])
    return Comparisons(len(strengths), a, b, sigmoid(strengths[a] - strengths[b] + beta))


def all_ordered_pairs(k: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(k) for j in range(k) if i != j]


strengths_st = st.lists(st.floats(-4, 4, allow_nan=False), min_size=2, max_size=9, unique=True).filter(
    lambda xs: min(abs(x - y) for x, y in itertools.combinations(xs, 2)) > 1e-3
)


@settings(max_examples=40, deadline=None)
@given(strengths=strengths_st, beta=st.floats(-3, 3))
def test_calibrations_remove_pure_position_bias(strengths: list[float], beta: float) -> None:
    s = np.array(strengths)
    comps = biased_comparator(s, beta, all_ordered_pairs(len(s)))
    truth = np.argsort(-s, kind="stable")
    for name in ("symmetric", "logodds", "bias"):
        calibrated = CALIBRATIONS[name](comps)
        for method, aggregator in AGGREGATORS.items():
            if method in RAW_ROW_AGGREGATORS:  # reads the slot of raw rows: refused after a calibration
                continue
            order = aggregator(calibrated).ranking()
            assert list(order) == list(truth), (name, method)


@settings(max_examples=40, deadline=None)
@given(strengths=strengths_st, beta=st.floats(-3, 3))
def test_logodds_and_bias_recover_unbiased_logits(strengths: list[float], beta: float) -> None:
    s = np.array(strengths)
    comps = biased_comparator(s, beta, all_ordered_pairs(len(s)))
    for calibrate in (logodds, position_bias):
        out = calibrate(comps)
        np.testing.assert_allclose(logit(out.p), s[out.a] - s[out.b], atol=1e-6)
        assert out.model_calls == len(comps)


def test_bias_debiases_one_order_pairs_from_the_pairs_seen_twice() -> None:
    s = np.array([2.0, 1.2, 0.3, -0.5, -1.0])
    beta = 0.9
    pairs = [(0, 1), (1, 0), (2, 3), (3, 2), (0, 4), (4, 2), (1, 3)]  # two pairs both ways, three one way
    comps = biased_comparator(s, beta, pairs)
    assert estimate_slot_bias(ordered_pair_stats(comps)) == pytest.approx(beta, abs=CALIB_TOL)
    out = position_bias(comps)
    np.testing.assert_allclose(logit(out.p), s[out.a] - s[out.b], atol=1e-6)
    # logodds cannot debias one-order pairs: it leaves them as they are
    lo = logodds(comps)
    one_way = lo.weight == 1
    np.testing.assert_allclose(logit(lo.p[one_way]), s[lo.a[one_way]] - s[lo.b[one_way]] + beta, atol=1e-6)


def test_symmetric_by_hand() -> None:
    comps = Comparisons.from_triples(2, [(0, 1, 0.9), (1, 0, 0.7)])
    out = symmetric(comps)
    assert list(out.a) == [0] and list(out.b) == [1]
    assert out.p[0] == pytest.approx((0.9 + 1 - 0.7) / 2, abs=CALIB_TOL)
    assert out.weight[0] == 2


def test_prp_vote_conflict_is_half_a_win() -> None:
    comps = Comparisons.from_triples(3, [(0, 1, 0.9), (1, 0, 0.8), (0, 2, 0.9), (2, 0, 0.1)])
    out = CALIBRATIONS["prp"](comps)
    by_pair = {(int(a), int(b)): float(p) for a, b, p in zip(out.a, out.b, out.p, strict=True)}
    assert by_pair == {(0, 1): 0.5, (0, 2): 1.0}


def test_calibration_does_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(3)
    pairs = all_ordered_pairs(7) + all_ordered_pairs(7)[:10]
    comps = Comparisons.from_triples(7, [(a, b, float(rng.random())) for a, b in pairs])
    perm = rng.permutation(len(comps))
    shuffled = Comparisons(7, comps.a[perm], comps.b[perm], comps.p[perm])
    for calibrate in CALIBRATIONS.values():
        x, y = calibrate(comps), calibrate(shuffled)
        kx = np.lexsort((x.p, x.b, x.a))
        ky = np.lexsort((y.p, y.b, y.a))
        assert np.array_equal(x.a[kx], y.a[ky]) and np.array_equal(x.b[kx], y.b[ky])
        np.testing.assert_array_equal(x.p[kx], y.p[ky])


def test_order_inconsistency_by_hand() -> None:
    # pair {0,1}: prefers slot A twice -> inconsistent; pair {0,2}: consistent; pair {1,2}: one order only
    comps = Comparisons.from_triples(3, [(0, 1, 0.8), (1, 0, 0.6), (0, 2, 0.9), (2, 0, 0.2), (1, 2, 0.7)])
    rate, pairs = order_inconsistency(comps)
    assert pairs == 2 and rate == pytest.approx(0.5)
    assert order_inconsistency(Comparisons.from_triples(3, [(0, 1, 0.8)])) == (0.0, 0)


def brute_force_cyclic_share(P: np.ndarray, seen: np.ndarray) -> tuple[float, int]:
    n = len(P)
    cyclic = decided = 0
    for i, j, k in itertools.combinations(range(n), 3):
        edges = [(i, j), (j, k), (i, k)]
        if not all(seen[x, y] and P[x, y] != 0.5 for x, y in edges):
            continue
        decided += 1
        wins = [sum(P[x, y] > 0.5 for y in (i, j, k) if y != x) for x in (i, j, k)]
        cyclic += sorted(wins) == [1, 1, 1]
    return (cyclic / decided if decided else 0.0), decided


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 8), seed=st.integers(0, 10_000), density=st.floats(0.3, 1.0))
def test_transitive_inconsistency_matches_brute_force(n: int, seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    rows = [(a, b, float(rng.choice([0.2, 0.5, 0.7, 0.9])))
            for a, b in all_ordered_pairs(n) if rng.random() < density]
    comps = Comparisons.from_triples(n, rows)
    P, seen = comps.preference_matrix()
    rate, triads = transitive_inconsistency(comps)
    expected_rate, expected_triads = brute_force_cyclic_share(P, seen)
    assert triads == expected_triads
    assert rate == pytest.approx(expected_rate, abs=CALIB_TOL)


def test_diagnostics_of_a_cycle() -> None:
    comps = Comparisons.from_triples(3, [(0, 1, 0.9), (1, 2, 0.9), (2, 0, 0.9)])
    d = diagnose(comps)
    assert d.transitive_inconsistency == 1.0 and d.decided_triads == 1
    assert d.order_inconsistency == 0.0 and d.both_order_pairs == 0
