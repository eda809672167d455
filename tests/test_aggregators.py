"""Tests of the aggregators: hand-derived fixtures, properties (hypothesis), and BT specifics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank.aggregation.aggregators import (
    AGGREGATORS,
    DEFAULT_ALPHA,
    borda,
    bradley_terry,
    copeland,
    enhanced_borda,
    hodgerank,
    kwiksort,
    pagerank,
)
from rerank.aggregation.aggregators.ebc import transitive_closure
from rerank.aggregation.comparisons import Comparisons, sigmoid

#: One tolerance for every number in the JSON fixtures (scores and standard errors).
FIXTURE_TOL = 1e-6

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "aggregators"
FIXTURES = sorted(FIXTURE_DIR.glob("*.json"))

HYPOTHESIS = settings(max_examples=60, deadline=None)


def make(n_items: int, rows: list) -> Comparisons:
    """Comparisons from rows ``[a, b, p]`` or ``[a, b, p, weight]``."""
    if not rows:
        return Comparisons.empty(n_items)
    full = [list(r) + [1.0] * (4 - len(r)) for r in rows]
    a, b, p, w = (np.array(col) for col in zip(*full, strict=True))
    return Comparisons(n_items, a.astype(np.int64), b.astype(np.int64), p.astype(float), w.astype(float))


def is_permutation(ranking: np.ndarray, n: int) -> bool:
    return ranking.dtype.kind == "i" and len(ranking) == n and np.array_equal(np.sort(ranking), np.arange(n))


# ---------------------------------------------------------------------------------------------- registry

# aggregators that read both slots of a row (``sum`` is duoBERT's first-slot sum: b's side adds nothing)
SLOT_AWARE = {name: f for name, f in AGGREGATORS.items() if name != "sum"}


def test_registry_keys_and_names():
    assert list(AGGREGATORS) == [
        "borda", "ebc", "bt", "greedy", "pagerank", "kwiksort", "copeland", "hodgerank", "sum", "auto"
    ]
    assert {f.__name__ for f in AGGREGATORS.values()} == {
        "auto",
        "first_slot_sum",
        "borda",
        "enhanced_borda",
        "bradley_terry",
        "greedy",
        "pagerank",
        "kwiksort",
        "copeland",
        "hodgerank",
    }
    for f in AGGREGATORS.values():
        assert f.__doc__ and len(f.__doc__) > 100


def test_unknown_options_are_rejected():
    c = make(3, [[0, 1, 0.7]])
    for f in AGGREGATORS.values():
        with pytest.raises(TypeError):
            f(c, no_such_option=1)


# ---------------------------------------------------------------------------------------------- fixtures


def test_fixtures_exist():
    assert len(FIXTURES) >= 5


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture(path: Path):
    spec = json.loads(path.read_text())
    assert spec["description"]
    c = make(spec["n_items"], spec["comparisons"])
    options = spec.get("options", {})
    assert spec["expected"]
    for method, expected in spec["expected"].items():
        result = AGGREGATORS[method](c, **options.get(method, {}))
        if "scores" in expected:
            np.testing.assert_allclose(
                result.scores, expected["scores"], rtol=0, atol=FIXTURE_TOL, err_msg=f"{path.stem}/{method}"
            )
        if "stderr" in expected:
            assert result.stderr is not None
            np.testing.assert_allclose(
                result.stderr, expected["stderr"], rtol=0, atol=FIXTURE_TOL, err_msg=f"{path.stem}/{method}"
            )
        if "ranking" in expected:
            assert result.ranking().tolist() == expected["ranking"], f"{path.stem}/{method}"


# ---------------------------------------------------------------------------------------------- properties


def perfect_comparisons(true_order: list[int]) -> Comparisons:
    """All ordered pairs; p = 1 when a is truly better than b, else 0."""
    k = len(true_order)
    rank = np.empty(k, dtype=np.int64)
    rank[np.asarray(true_order)] = np.arange(k)
    a, b = np.nonzero(~np.eye(k, dtype=bool))
    return Comparisons(k, a, b, (rank[a] < rank[b]).astype(float))


@HYPOTHESIS
@given(true_order=st.integers(2, 12).flatmap(lambda k: st.permutations(range(k))), seed=st.integers(0, 2**16))
def test_perfect_comparator_gives_true_order(true_order, seed):
    c = perfect_comparisons(true_order)
    for name, f in AGGREGATORS.items():
        result = f(c, seed=seed) if name == "kwiksort" else f(c)
        assert result.ranking().tolist() == list(true_order), name
        assert np.all(np.isfinite(result.scores)), name


@st.composite
def comparison_sets(draw, min_n: int = 0, max_n: int = 9, max_rows: int = 40):
    """Random comparisons, possibly sparse and disconnected, with p often exactly 0, 1/2 or 1."""
    n = draw(st.integers(min_n, max_n))
    if n < 2:
        return n, []
    p = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.floats(0.0, 1.0))
    row = st.tuples(st.integers(0, n - 1), st.integers(1, n - 1), p, st.sampled_from([1.0, 1.0, 2.0, 0.5]))
    rows = draw(st.lists(row, max_size=max_rows))
    return n, [[a, (a + d) % n, q, w] for a, d, q, w in rows]


@HYPOTHESIS
@given(data=comparison_sets(min_n=2), perm_seed=st.integers(0, 2**32 - 1), seed=st.integers(0, 100))
def test_row_order_does_not_matter(data, perm_seed, seed):
    n, rows = data
    shuffled = [rows[i] for i in np.random.default_rng(perm_seed).permutation(len(rows))]
    c1, c2 = make(n, rows), make(n, shuffled)
    for name, f in AGGREGATORS.items():
        kw = {"seed": seed} if name == "kwiksort" else {}
        r1, r2 = f(c1, **kw), f(c2, **kw)
        assert np.array_equal(r1.ranking(), r2.ranking()), name
        assert np.array_equal(r1.scores, r2.scores), name


@HYPOTHESIS
@given(data=comparison_sets())
def test_every_item_ranked_exactly_once(data):
    n, rows = data
    c = make(n, rows)
    for name, f in AGGREGATORS.items():
        result = f(c)
        assert result.scores.shape == (n,), name
        assert np.all(np.isfinite(result.scores)), name
        assert is_permutation(result.ranking(), n), name
        if result.stderr is not None:
            assert result.stderr.shape == (n,) and np.all(np.isfinite(result.stderr)), name


@pytest.mark.parametrize("n", [0, 1, 2, 5, 17])
def test_no_comparisons(n):
    c = Comparisons.empty(n)
    for name, f in AGGREGATORS.items():
        result = f(c)
        assert result.ranking().tolist() == list(range(n)), name  # all tied: index order
        assert np.all(np.isfinite(result.scores)), name


def test_disconnected_components_and_isolated_items():
    # components {0, 1, 2} and {4, 5, 7}; items 3 and 6 never compared
    rows = [[0, 1, 1.0], [1, 2, 1.0], [2, 0, 0.0], [5, 4, 0.9], [4, 5, 0.2], [4, 7, 0.8], [7, 5, 0.3]]
    c = make(8, rows)
    for name, f in SLOT_AWARE.items():
        result = f(c)
        ranking = result.ranking()
        assert is_permutation(ranking, 8), name
        pos = np.argsort(ranking)
        assert pos[0] < pos[1] < pos[2], name  # the order inside each component
        assert pos[5] < pos[4] < pos[7], name
    for name in ("bt", "copeland", "ebc"):  # symmetric scores: isolated items are neutral
        scores = AGGREGATORS[name](c).scores
        assert scores[3] == 0.0 and scores[6] == 0.0, name


def test_weight_counts_as_repeated_rows():
    rows = [[0, 1, 0.8], [1, 2, 0.6], [2, 0, 0.3], [3, 1, 0.55]]
    weighted = make(4, [*rows[:2], [*rows[2], 2.0], rows[3]])
    repeated = make(4, [*rows, rows[2]])
    for name, f in AGGREGATORS.items():
        r1, r2 = f(weighted), f(repeated)
        np.testing.assert_allclose(r1.scores, r2.scores, rtol=1e-12, atol=1e-12, err_msg=name)
        assert np.array_equal(r1.ranking(), r2.ranking()), name
        if r1.stderr is not None:  # bt, hodgerank: a weight is a count of calls for the uncertainty too
            np.testing.assert_allclose(r1.stderr, r2.stderr, rtol=1e-10, atol=1e-12, err_msg=name)
    # and the weight matters: with weight 2 on (0, 1, 0.1) item 1 wins the pair on the mean
    c = make(2, [[0, 1, 0.8], [0, 1, 0.1, 2.0]])
    for name, f in SLOT_AWARE.items():
        assert f(c).ranking().tolist() == [1, 0], name


def test_deterministic_on_repeat():
    rng = np.random.default_rng(3)
    n = 15
    a = rng.integers(0, n, 60)
    b = (a + rng.integers(1, n, 60)) % n
    c = Comparisons(n, a, b, rng.random(60))
    for f in AGGREGATORS.values():
        assert np.array_equal(f(c).ranking(), f(c).ranking())


# ---------------------------------------------------------------------------------------------- methods


def test_borda_is_additive():
    c = make(3, [[0, 1, 0.7], [2, 0, 0.4], [0, 1, 0.1, 3.0]])
    np.testing.assert_allclose(borda(c).scores, [0.7 + 0.6 + 0.3, 0.3 + 2.7, 0.4])


def test_transitive_closure():
    M = np.zeros((5, 5), dtype=bool)
    M[0, 1] = M[1, 2] = M[2, 3] = True
    R = transitive_closure(M)
    expected = np.zeros((5, 5), dtype=bool)
    for i in range(4):
        expected[i, i + 1 : 4] = True
    assert np.array_equal(R, expected)
    M[3, 0] = True  # a 4-cycle: everyone reaches everyone in it
    R = transitive_closure(M)
    assert R[:4, :4].all() and not R[4].any() and not R[:, 4].any()


def test_ebc_uses_closure():
    # 0 > 1 > 2 and 3 > 2 (more confidently). Copeland: 0 and 3 both win once, 3 has the larger margin.
    # EBC: 0 also reaches 2 through 1 in the closure, so 0 outranks 3.
    c = make(4, [[0, 1, 0.9], [1, 2, 0.9], [3, 2, 0.95]])
    assert copeland(c).ranking().tolist()[:2] == [3, 0]
    result = enhanced_borda(c)
    assert result.ranking().tolist() == [0, 3, 1, 2]
    np.testing.assert_allclose(result.scores, [2 + 0.4 / 4, 0.0, -3 - 0.85 / 4, 1 + 0.45 / 4])


def test_kwiksort_seed_is_used_and_deterministic():
    # a 5-cycle has no consistent order: different pivots give different orders
    c = make(5, [[i, (i + 1) % 5, 0.9] for i in range(5)])
    orders = {tuple(kwiksort(c, seed=s).ranking()) for s in range(30)}
    assert len(orders) > 1
    assert kwiksort(c, seed=7).ranking().tolist() == kwiksort(c, seed=7).ranking().tolist()


def test_pagerank_is_a_distribution():
    rng = np.random.default_rng(0)
    n = 30
    a = rng.integers(0, n, 200)
    b = (a + rng.integers(1, n, 200)) % n
    r = pagerank(Comparisons(n, a, b, rng.random(200)))
    assert np.all(r.scores > 0) and abs(r.scores.sum() - 1.0) < 1e-12
    with pytest.raises(ValueError):
        pagerank(Comparisons.empty(3), damping=1.0)


# ---------------------------------------------------------------------------------------------- BT


def random_pairs(n: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``m`` random ordered pairs (a != b) of ``n`` items."""
    a = rng.integers(0, n, m)
    return a, (a + rng.integers(1, n, m)) % n


def bt_sample(theta: np.ndarray, m: int, rng: np.random.Generator) -> Comparisons:
    a, b = random_pairs(len(theta), m, rng)
    p = (rng.random(m) < sigmoid(theta[a] - theta[b])).astype(float)
    return Comparisons(len(theta), a, b, p)


def test_bt_default_alpha_and_validation():
    assert DEFAULT_ALPHA == 0.1
    c = make(3, [[0, 1, 1.0]])
    for alpha in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            bradley_terry(c, alpha=alpha)


def test_bt_extreme_probabilities_stay_finite():
    # p exactly 0 or 1 everywhere (separable data), and tiny alpha
    c = perfect_comparisons(list(range(20)))
    for alpha in (1e-8, 1e-3, DEFAULT_ALPHA, 10.0):
        r = bradley_terry(c, alpha=alpha)
        assert np.all(np.isfinite(r.scores)) and np.all(np.isfinite(r.stderr)), alpha
        assert r.ranking().tolist() == list(range(20)), alpha
        assert abs(r.scores.mean()) < 1e-9


def test_bt_scores_are_mean_zero_and_recover_theta():
    rng = np.random.default_rng(11)
    theta = np.linspace(-2, 2, 12)
    r = bradley_terry(bt_sample(theta, 6000, rng), alpha=1e-6)
    assert abs(r.scores.mean()) < 1e-9
    err = np.abs(r.scores - theta)
    assert np.all(err < 4 * r.stderr)  # 4 sigma, every item


def test_bt_stderr_shrinks_with_more_comparisons():
    rng = np.random.default_rng(5)
    theta = np.linspace(-1.5, 1.5, 10)
    small = bradley_terry(bt_sample(theta, 400, rng)).stderr
    large = bradley_terry(bt_sample(theta, 1600, rng)).stderr
    assert np.all(np.isfinite(small)) and np.all(np.isfinite(large))
    assert np.all(large < small)
    ratio = large.mean() / small.mean()
    assert 0.42 < ratio < 0.58, ratio  # 4x the comparisons: about half the standard error
    # the same rows counted 4 times (weight 4): close to exactly half (the prior is fixed)
    c = bt_sample(theta, 400, rng)
    c4 = Comparisons(c.n_items, c.a, c.b, c.p, np.full(len(c), 4.0))
    ratio4 = bradley_terry(c4).stderr / bradley_terry(c).stderr
    assert np.all((ratio4 > 0.48) & (ratio4 < 0.52)), ratio4


def test_bt_large_k_runs():
    # speed is measured in bench/engine_bench.py (interleaved, on a quiet machine), not by a wall clock here
    rng = np.random.default_rng(2)
    theta = rng.normal(size=1000)
    r = bradley_terry(bt_sample(theta, 100_000, rng))
    assert np.all(np.isfinite(r.scores)) and np.all(np.isfinite(r.stderr))
    assert np.corrcoef(r.scores, theta)[0, 1] > 0.95


def test_bt_all_pairs_k100_orders_by_strength():
    rng = np.random.default_rng(4)
    theta = rng.normal(size=100)
    a, b = np.nonzero(~np.eye(100, dtype=bool))
    r = bradley_terry(Comparisons(100, a, b, sigmoid(theta[a] - theta[b])))
    assert r.ranking().tolist() == np.argsort(-theta, kind="stable").tolist()


# ---------------------------------------------------------------------------------------------- HodgeRank


def logit_sample(theta: np.ndarray, m: int, noise: float, rng: np.random.Generator) -> Comparisons:
    """``m`` random ordered pairs answered ``p = sigmoid(theta_a - theta_b + N(0, noise^2))``."""
    a, b = random_pairs(len(theta), m, rng)
    return Comparisons(len(theta), a, b, sigmoid(theta[a] - theta[b] + rng.normal(0.0, noise, m)))


def test_hodgerank_validation():
    c = make(3, [[0, 1, 0.8]])
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="alpha"):
            hodgerank(c, alpha=bad)
        with pytest.raises(ValueError, match="max_logit"):
            hodgerank(c, max_logit=bad)


def test_hodgerank_recovers_theta_within_its_stderr():
    rng = np.random.default_rng(3)
    theta = np.linspace(-2, 2, 12)
    r = hodgerank(logit_sample(theta, 3000, 1.5, rng), alpha=1e-6)
    assert abs(r.scores.mean()) < 1e-9
    assert np.all(np.abs(r.scores - theta) < 4 * r.stderr)
    # noise-free log-odds: exact up to the (negligible) ridge
    exact = hodgerank(logit_sample(theta, 300, 0.0, rng), alpha=1e-9)
    np.testing.assert_allclose(exact.scores, theta, atol=1e-6)


def test_hodgerank_stderr_follows_the_noise_and_the_data():
    rng = np.random.default_rng(8)
    theta = np.linspace(-1, 1, 10)
    small = hodgerank(logit_sample(theta, 400, 2.0, rng)).stderr
    large = hodgerank(logit_sample(theta, 1600, 2.0, rng)).stderr
    assert 0.42 < large.mean() / small.mean() < 0.58  # 4x the comparisons: about half
    quiet = hodgerank(logit_sample(theta, 1600, 0.5, rng)).stderr
    assert 0.2 < quiet.mean() / large.mean() < 0.3  # a quarter of the noise: about a quarter


def test_hodgerank_keeps_margins_that_bradley_terry_flattens():
    # 0 beats 1 by a wide margin (logit 6), 2 beats 1 by logit 2 and beats 0 narrowly (logit 0.5). Read as
    # soft wins (BT), 2 won both its comparisons and goes first; read as log-odds, 0 sits ~6 above 1 and 2
    # only ~2 above 1, so least squares puts 0 first.
    c = make(3, [[0, 1, sigmoid(6.0)], [2, 1, sigmoid(2.0)], [2, 0, sigmoid(0.5)]])
    assert bradley_terry(c).ranking().tolist() == [2, 0, 1]
    assert hodgerank(c).ranking().tolist() == [0, 2, 1]
    assert hodgerank(make(2, [[0, 1, 1.0]]), max_logit=3.0).scores[0] == pytest.approx(1.0)  # y = 3, ridge 1


def test_first_slot_sum_is_duobert_sum():
    """duoBERT's SUM: s_i = sum_j p(i, j) over the rows where i is first; a second slot adds nothing."""
    rng = np.random.default_rng(5)
    n = 6
    P = rng.random((n, n))
    a, b = np.nonzero(~np.eye(n, dtype=bool))
    result = AGGREGATORS["sum"](Comparisons(n, a, b, P[a, b]))
    expected = [sum(P[i, j] for j in range(n) if j != i) for i in range(n)]
    np.testing.assert_allclose(result.scores, expected, rtol=0, atol=1e-12)
    # only second-slot appearances: zero
    assert AGGREGATORS["sum"](make(3, [[0, 1, 0.2], [0, 2, 0.9]])).scores.tolist() == [1.1, 0.0, 0.0]


# ---------------------------------------------------------------------------------------------- auto


def _scored(n: int, rng: np.random.Generator, noise: float, pairs: int = 200) -> Comparisons:
    """Answers p = sigmoid(s_a - s_b + noise) on random ordered pairs, scores s = -index (transitive when noise 0)."""
    a = rng.integers(0, n, pairs)
    b = (a + rng.integers(1, n, pairs)) % n
    return Comparisons(n, a, b, sigmoid((b - a) * 0.5 + rng.normal(0, noise, pairs)))


def test_auto_reads_the_regime_of_the_raw_answers():
    from rerank.aggregation.aggregators.auto import auto, regime
    from rerank.aggregation.calibration import diagnose
    from rerank.aggregation.engine import aggregate

    rng = np.random.default_rng(0)
    consistent, noisy = _scored(12, rng, 0.0), _scored(12, rng, 4.0)
    assert regime(diagnose(consistent)) == "consistent" and regime(diagnose(noisy)) == "noisy"
    np.testing.assert_array_equal(auto(consistent).scores, bradley_terry(consistent).scores)
    np.testing.assert_array_equal(auto(noisy).scores, hodgerank(noisy).scores)
    # too few decided triads say nothing: noisy (HodgeRank), the safe choice
    sparse = Comparisons(4, np.array([0, 1]), np.array([1, 2]), np.array([0.9, 0.8]))
    assert regime(diagnose(sparse)) == "noisy"
    # the engine reads the raw answers, not the calibrated rows with the first-stage prior, names its choice, and
    # keeps the prior for a noisy comparator only
    assert aggregate(consistent, method="auto", prior_weight=1.0).method == "bt"
    assert aggregate(noisy, method="auto", prior_weight=1.0).method == "hodgerank"
    for comps, method, prior in ((consistent, "bt", 0.0), (noisy, "hodgerank", 1.0)):
        expected = aggregate(comps, method=method, prior_weight=prior).scores
        np.testing.assert_array_equal(aggregate(comps, method="auto", prior_weight=1.0).scores, expected)
    assert not np.array_equal(aggregate(consistent, method="bt", prior_weight=1.0).scores,
                              aggregate(consistent, method="bt", prior_weight=0.0).scores)
