"""Tests of rank fusion: Borda, reciprocal rank fusion and the Kemeny approximation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank.aggregation.fusion import (
    FUSIONS,
    agreement_matrix,
    borda_fusion,
    kemeny_cost,
    kemeny_fusion,
    pairwise_counts,
    peer_rank_fusion,
    peer_rank_weights,
    reciprocal_rank_fusion,
)
from rerank.pipeline import Candidate, RankOptions, rerank

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
    assert list(FUSIONS) == ["borda", "rrf", "kemeny", "peer"]
    assert FUSIONS["peer"] is peer_rank_fusion
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


# ---------------------------------------------------------------------------------------------- peer rank (PRD)


def test_agreement_matrix_by_hand():
    # A: 0 1 2 3; B: 1 0 2 3 (one of 6 pairs swapped); C: top-2 list 3, 2 (orders 5 pairs: 3>2, and both > 0, 1)
    A = agreement_matrix([np.array([0, 1, 2, 3]), np.array([1, 0, 2, 3]), np.array([3, 2])], 4)
    np.testing.assert_allclose(np.diag(A), 1.0)
    assert A[0, 1] == A[1, 0] == pytest.approx(5 / 6)
    assert A[0, 2] == pytest.approx(0.0)  # every pair C orders, A orders the other way
    assert agreement_matrix([np.array([0]), np.array([1])], 3)[0, 1] == pytest.approx(0.0)  # 0>1 vs 1>0


def test_peer_rank_by_hand_drops_the_contrarian():
    truth = np.array([0, 1, 2, 3, 4])
    result = peer_rank_fusion([truth, truth, truth[::-1]], 5)
    np.testing.assert_allclose(result.weights, [0.5, 0.5, 0.0], atol=1e-12)
    assert result.ranking().tolist() == truth.tolist()
    # equal-weight Borda: the contrarian takes back half the margins (5+5+1, 4+4+2, ...)
    np.testing.assert_allclose(borda_fusion([truth, truth, truth[::-1]], 5).scores, [11, 10, 9, 8, 7])
    np.testing.assert_allclose(result.scores, [5, 4, 3, 2, 1])


def test_peer_rank_equal_judges_is_borda():
    rankings = [np.array([2, 0, 1, 3])] * 3
    result = peer_rank_fusion(rankings, 4)
    np.testing.assert_allclose(result.weights, [1 / 3] * 3)
    np.testing.assert_allclose(result.scores * 3, borda_fusion(rankings, 4).scores)
    np.testing.assert_allclose(peer_rank_weights(np.ones((1, 1))), [1.0])
    assert peer_rank_fusion([], 3).ranking().tolist() == [0, 1, 2]


def _noisy_ranking(rng: np.random.Generator, n: int, noise: float) -> np.ndarray:
    return np.argsort(-(np.arange(n, 0, -1) + rng.normal(0, noise, n)), kind="stable")


def test_peer_rank_weights_follow_the_judges_noise_and_beat_borda():
    """Judges of noise 1, 5, 40 on 30 items, 200 trials: the weights are ordered by noise, the iteration
    settles away from equal weights, and the weighted fusion is closer to the truth than equal-weight Borda."""
    rng = np.random.default_rng(0)
    n, noises = 30, (1.0, 5.0, 40.0)
    weights, peer_err, borda_err = [], [], []
    truth_C = pairwise_counts([np.arange(n)], n)
    for _ in range(200):
        rankings = [_noisy_ranking(rng, n, s) for s in noises]
        fused = peer_rank_fusion(rankings, n)
        weights.append(fused.weights)
        peer_err.append(kemeny_cost(fused.ranking(), truth_C))
        borda_err.append(kemeny_cost(borda_fusion(rankings, n).ranking(), truth_C))
    w = np.mean(weights, axis=0)
    assert w[0] > w[1] > w[2] and w[2] < 0.2 and abs(w.sum() - 1) < 1e-9
    assert np.mean(peer_err) < np.mean(borda_err)


def test_pipeline_reports_the_fusion_weights():
    """Four comparators through rerank(): two good ones, a noisy and a contrarian one (answers reversed). (Two
    judges alone always weigh the same: agreement is symmetric.)"""

    class Graded:
        def __init__(self, sign: float, noise: float, seed: int) -> None:
            self.sign, self.noise, self.rng = sign, noise, np.random.default_rng(seed)

        def compare_batch(self, items):
            gap = np.array([int(b) - int(a) for _, a, b in items], dtype=np.float64)  # lower index = better
            return 1 / (1 + np.exp(-(self.sign * gap + self.rng.normal(0, self.noise, len(gap)))))

    cands = [Candidate(f"d{i}", str(i)) for i in range(12)]
    models = [Graded(1.0, 0.5, 1), Graded(1.0, 1.0, 4), Graded(1.0, 40.0, 2), Graded(-1.0, 0.5, 3)]
    out = rerank("q", cands, models, RankOptions(fusion="peer"))
    w = out.fusion_weights
    assert w is not None and len(w) == 4 and abs(sum(w) - 1) < 1e-12
    assert min(w[0], w[1]) > w[2] > 0 and w[3] == 0.0
    assert out.results[0].id == "d0"
    assert rerank("q", cands, models, RankOptions(fusion="borda")).fusion_weights is None
