"""Tests of rank fusion: Borda, reciprocal rank fusion and the Kemeny approximation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank.aggregation.fusion import (
    FUSIONS,
    borda_fusion,
    kemeny_cost,
    kemeny_fusion,
    pairwise_counts,
    reciprocal_rank_fusion,
)

TOL = 1e-12


def brute_force_kemeny(rankings, n_items):
    """Minimum cost and all optimal orders, by enumeration."""
    C = pairwise_counts(rankings, n_items)
    costs = {
        perm: kemeny_cost(np.array(perm, dtype=np.int64), C)
        for perm in itertools.permutations(range(n_items))
    }
    best = min(costs.values())
    return best, [list(p) for p, c in costs.items() if c == best]


def random_rankings(rng: np.random.Generator, n: int, r: int, partial_rate: float = 0.4):
    out = []
    for _ in range(r):
        m = int(rng.integers(0, n + 1)) if rng.random() < partial_rate else n
        out.append(rng.permutation(n)[:m])
    return out


def test_registry():
    assert list(FUSIONS) == ["borda", "rrf", "kemeny"]
    assert FUSIONS["borda"] is borda_fusion
    assert FUSIONS["rrf"] is reciprocal_rank_fusion
    assert FUSIONS["kemeny"] is kemeny_fusion


# ---------------------------------------------------------------------------------------------- by hand


def test_rrf_by_hand():
    # ranking A: 0, 1, 2 (full); ranking B: 2, 0 (partial; 1 and 3 absent get nothing from it)
    rankings = [np.array([0, 1, 2]), np.array([2, 0])]
    r = reciprocal_rank_fusion(rankings, 4)
    expected = [1 / 61 + 1 / 62, 1 / 62, 1 / 63 + 1 / 61, 0.0]
    np.testing.assert_allclose(r.scores, expected, rtol=0, atol=TOL)
    assert r.ranking().tolist() == [0, 2, 1, 3]
    r0 = reciprocal_rank_fusion(rankings, 4, k=0)
    np.testing.assert_allclose(r0.scores, [1 + 1 / 2, 1 / 2, 1 / 3 + 1, 0.0], rtol=0, atol=TOL)


def test_rrf_k_changes_the_balance():
    # item 0 is first once; item 1 is second in both: a small k favours the single first place
    rankings = [[0, 1, 2], [2, 1, 0]]
    assert reciprocal_rank_fusion(rankings, 3, k=0).ranking().tolist() == [0, 2, 1]
    assert reciprocal_rank_fusion(rankings, 3, k=60).ranking().tolist() == [0, 2, 1]  # ties: index order
    rankings = [[0, 2, 1], [1, 2, 0], [2, 0, 1]]
    # k = 0: 0 -> 1 + 1/3 + 1/2, 1 -> 1/3 + 1 + 1/3, 2 -> 1/2 + 1/2 + 1
    np.testing.assert_allclose(
        reciprocal_rank_fusion(rankings, 3, k=0).scores, [11 / 6, 5 / 3, 2.0], rtol=0, atol=TOL
    )
    with pytest.raises(ValueError):
        reciprocal_rank_fusion(rankings, 3, k=-1)


def test_borda_fusion_by_hand():
    rankings = [np.array([0, 1, 2]), np.array([2, 0])]
    r = borda_fusion(rankings, 4)
    # points n - position: A gives 0:4, 1:3, 2:2; B gives 2:4, 0:3
    np.testing.assert_allclose(r.scores, [7.0, 3.0, 6.0, 0.0], rtol=0, atol=TOL)
    assert r.ranking().tolist() == [0, 2, 1, 3]


def test_kemeny_by_hand():
    # voters 0>1>2, 1>2>0, 2>0>1 (a Condorcet cycle) and 0>1>2 again. C[i, j] = voters with i above j:
    # C01 = 3, C10 = 1, C12 = 3, C21 = 1, C02 = C20 = 2. cost(0,1,2) = C10 + C20 + C21 = 4; every other
    # order costs 6 or 8 (e.g. cost(1,2,0) = C21 + C01 + C02 = 6), so 0,1,2 is the unique optimum.
    rankings = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]
    best, optimal = brute_force_kemeny(rankings, 3)
    r = kemeny_fusion(rankings, 3)
    assert optimal == [[0, 1, 2]]
    assert r.ranking().tolist() == [0, 1, 2]
    assert kemeny_cost(r.ranking(), pairwise_counts(rankings, 3)) == best == 4.0


def test_pairwise_counts_partial_as_top_m():
    C = pairwise_counts([np.array([2, 0])], 4)
    expected = np.zeros((4, 4))
    expected[2, [0, 1, 3]] = 1  # 2 above everything
    expected[0, [1, 3]] = 1  # 0 above the absent items; nothing between absent items 1 and 3
    assert np.array_equal(C, expected)


def test_identical_rankings_are_returned():
    rng = np.random.default_rng(0)
    for n in (1, 5, 30):
        order = rng.permutation(n)
        for f in FUSIONS.values():
            assert f([order, order, order], n).ranking().tolist() == order.tolist()


# ---------------------------------------------------------------------------------------------- Kemeny


def test_kemeny_matches_brute_force_on_random_small_cases():
    rng = np.random.default_rng(20240601)
    for _ in range(400):
        n = int(rng.integers(1, 7))
        rankings = random_rankings(rng, n, int(rng.integers(1, 8)))
        best, optimal = brute_force_kemeny(rankings, n)
        got = kemeny_fusion(rankings, n).ranking()
        assert kemeny_cost(got, pairwise_counts(rankings, n)) == best
        if len(optimal) == 1:
            assert got.tolist() == optimal[0]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    rankings=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=7),
)
def test_kemeny_matches_brute_force_hypothesis(n, rankings):
    rank_lists = [random_rankings(np.random.default_rng(s), n, 1)[0] for s in rankings]
    best, _ = brute_force_kemeny(rank_lists, n)
    got = kemeny_fusion(rank_lists, n).ranking()
    assert kemeny_cost(got, pairwise_counts(rank_lists, n)) == best


def test_kemeny_is_a_local_optimum_and_beats_borda_on_larger_cases():
    rng = np.random.default_rng(9)
    n = 25
    base = np.arange(n)
    rankings = []
    for _ in range(7):  # noisy copies of one order, some truncated
        noisy = np.argsort(base + rng.normal(scale=4.0, size=n), kind="stable")
        rankings.append(noisy[: int(rng.integers(10, n + 1))])
    C = pairwise_counts(rankings, n)
    order = kemeny_fusion(rankings, n).ranking()
    cost = kemeny_cost(order, C)
    assert cost <= kemeny_cost(borda_fusion(rankings, n).ranking(), C)
    for p in range(n):  # no single insertion lowers the cost
        rest = np.delete(order, p)
        for q in range(n):
            assert kemeny_cost(np.insert(rest, q, order[p]), C) >= cost


# ---------------------------------------------------------------------------------------------- all


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 12), seeds=st.lists(st.integers(0, 2**32 - 1), max_size=5))
def test_every_item_ranked_exactly_once(n, seeds):
    rankings = [random_rankings(np.random.default_rng(s), n, 1, partial_rate=0.8)[0] for s in seeds]
    for name, f in FUSIONS.items():
        r = f(rankings, n)
        ranking = r.ranking()
        assert len(ranking) == n and np.array_equal(np.sort(ranking), np.arange(n)), name
        assert np.all(np.isfinite(r.scores)), name


def test_items_absent_everywhere_get_no_credit():
    rankings = [[3, 1], [1]]
    for name, f in FUSIONS.items():
        ranking = f(rankings, 5).ranking().tolist()
        assert ranking[:2] == [1, 3], name
        assert sorted(ranking[2:]) == [0, 2, 4], name
    for f in (borda_fusion, reciprocal_rank_fusion):
        scores = f(rankings, 5).scores
        assert scores[0] == scores[2] == scores[4] == 0.0


@pytest.mark.parametrize("bad", [[[0, 0, 1]], [[0, 5]], [[-1]]])
def test_invalid_rankings_raise(bad):
    for f in FUSIONS.values():
        with pytest.raises(ValueError):
            f(bad, 5)
