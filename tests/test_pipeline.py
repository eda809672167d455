"""rerank.pipeline.rerank: sampler -> model -> calibration -> aggregator (-> fusion), with real MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

from rerank.pipeline import Candidate, RankOptions, RequestError, rerank


class BiasedOracle:
    """A comparator from known relevance with a first-slot bias (test double for a model's answers)."""

    def __init__(self, relevance: dict[str, float], bias: float = 0.0) -> None:
        self.relevance = relevance
        self.bias = bias
        self.calls = 0

    def compare_batch(self, items):
        self.calls += len(items)
        gap = np.array([self.relevance[a] - self.relevance[b] for _, a, b in items])
        return 1.0 / (1.0 + np.exp(-(gap + self.bias)))


CANDS = [Candidate(f"d{i}", f"text {i}") for i in range(6)]
REL = {f"text {i}": float(v) for i, v in enumerate([0, 3, 1, 5, 2, 4])}


def test_rerank_orders_by_the_comparator_and_reports_usage() -> None:
    oracle = BiasedOracle(REL, bias=0.8)
    out = rerank("q", CANDS, [oracle], RankOptions(sampler="all", calibration="symmetric"))
    assert [r.id for r in out.results] == ["d3", "d5", "d1", "d4", "d2", "d0"]
    assert out.usage.comparisons == oracle.calls == 30
    assert out.usage.batches == 1 and not out.usage.partial
    assert all(r.stderr is not None for r in out.results)
    assert [r.index for r in out.results][:2] == [3, 5]


def test_hodgerank_through_the_pipeline_recovers_the_margins() -> None:
    # the comparator answers logit p = relevance gap + slot bias: after the bias calibration the log-odds
    # are exact, so least squares gives back the relevances (centred), with standard errors
    oracle = BiasedOracle(REL, bias=0.8)
    out = rerank("q", CANDS, [oracle], RankOptions(sampler="all", calibration="bias", aggregator="hodgerank",
                                                      prior_weight=0.0))
    assert [r.id for r in out.results] == ["d3", "d5", "d1", "d4", "d2", "d0"]
    rel = np.array([REL[f"text {r.index}"] for r in out.results])
    scores = np.array([r.score for r in out.results])
    # each pair is one row of weight 2 (both orders), so L = 2 (6 I - J) acts as 12 on centred vectors and
    # (L + I) s = 12 r gives s = 12 / 13 r
    np.testing.assert_allclose(scores, (rel - rel.mean()) * 12 / 13, atol=1e-9)
    stderr = np.array([r.stderr for r in out.results], dtype=float)
    assert np.all(np.isfinite(stderr)) and np.all(stderr > 0)
    assert np.all(stderr < np.min(-np.diff(scores)))  # every neighbour gap is larger than the uncertainty


def test_top_n_budget_and_fusion_of_two_models() -> None:
    a, b = BiasedOracle(REL), BiasedOracle(REL, bias=0.3)
    out = rerank("q", CANDS, [a, b], RankOptions(sampler="window", budget=0.5, fusion="rrf"), top_n=3)
    assert len(out.results) == 3 and out.results[0].stderr is None
    assert out.usage.comparisons == a.calls + b.calls <= 2 * 15


def test_time_budget_gives_a_partial_ranking_not_an_error() -> None:
    class Slow(BiasedOracle):
        def compare_batch(self, items):
            import time

            time.sleep(0.05)
            return super().compare_batch(items)

    out = rerank("q", CANDS, [Slow(REL)], RankOptions(sampler="sliding", time_budget_ms=60), top_n=6)
    assert out.usage.partial
    assert sorted(r.id for r in out.results) == sorted(c.id for c in CANDS)


@pytest.mark.parametrize(
    ("query", "cands", "options", "field"),
    [
        ("", CANDS, RankOptions(), "query"),
        ("q", [], RankOptions(), "candidates"),
        ("q", [Candidate("x", "a"), Candidate("x", "b")], RankOptions(), "candidates[1].id"),
        ("q", [Candidate("x", " ")], RankOptions(), "candidates[0].text"),
        ("q", CANDS, RankOptions(sampler="nope"), "options.sampler"),
        ("q", CANDS, RankOptions(aggregator="nope"), "options.aggregator"),
        ("q", CANDS, RankOptions(calibration="nope"), "options.calibration"),
        ("q", CANDS, RankOptions(budget=-3), "options.budget"),
        ("q", CANDS, RankOptions(budget=1.5), "options.budget"),
        ("q", CANDS, RankOptions(time_budget_ms=0), "options.time_budget_ms"),
    ],
)
def test_bad_requests_name_the_field(query, cands, options, field) -> None:
    with pytest.raises(RequestError) as err:
        rerank(query, cands, [BiasedOracle(REL)], options)
    assert err.value.field == field
    assert str(err.value).startswith(field)


def test_real_minilm_end_to_end(minilm) -> None:
    cands = [
        Candidate("cook", "Boil the pasta for ten minutes in salted water."),
        Candidate("tax", "Income tax returns are due in April in the United States."),
        Candidate("paris", "Paris is the capital and largest city of France."),
    ]
    out = rerank("what is the capital of France", cands, [minilm], RankOptions(sampler="all"))
    assert out.results[0].id == "paris"
    assert out.usage.comparisons == 6


@pytest.mark.parametrize(
    ("cands", "budget", "asked"),
    [
        (CANDS[:2], 0.1, "a fraction 0.1 of k(k-1) = 2"),  # 10% of 2 ordered pairs rounds to 0
        (CANDS, 0.01, "a fraction 0.01 of k(k-1) = 30"),
        (CANDS, 0, "0 resolves"),
    ],
)
@pytest.mark.parametrize("sampler", ["auto", "all", "heapsort", "active"])
def test_a_budget_that_resolves_to_no_comparison_is_an_error(cands, budget, asked, sampler) -> None:
    """Issue 13 item 3: the model used never to be asked and every score was 0; now the error names the
    field, k and the minimum, whatever the sampler."""
    oracle = BiasedOracle(REL)
    with pytest.raises(RequestError) as err:
        rerank("q", cands, [oracle], RankOptions(sampler=sampler, budget=budget))
    assert err.value.field == "options.budget"
    message = str(err.value)
    assert asked in message and f"k = {len(cands)} candidates" in message and "at least 1 is needed" in message
    assert oracle.calls == 0


def test_the_smallest_budget_asks_once_and_one_candidate_needs_none() -> None:
    oracle = BiasedOracle(REL)
    out = rerank("q", CANDS, [oracle], RankOptions(budget=1))
    assert out.usage.comparisons == oracle.calls == 1
    single = rerank("q", CANDS[:1], [oracle], RankOptions(budget=0.1))
    assert [r.id for r in single.results] == ["d0"] and oracle.calls == 1


class LateWinner:
    """First-stage order is right (p = sigmoid(0.4) for the earlier item), except that the last candidate beats
    the first with p = 0.99: the one late candidate that wins its only comparison."""

    def __init__(self, n: int) -> None:
        self.n = n

    def compare_batch(self, items):
        out = []
        for _, a, b in items:
            i, j = int(a), int(b)
            if {i, j} == {0, self.n - 1}:
                out.append(0.99 if i == self.n - 1 else 0.01)
            else:
                out.append(1.0 / (1.0 + np.exp(-0.4 * np.sign(j - i))))
        return np.array(out)


def test_a_ranking_from_one_round_moves_items_only_as_far_as_the_evidence_supports() -> None:
    """Issue 13 item 4: the active sampler's first round is a ring of first-stage neighbours, including (last,
    first); cut after that round (as a time budget does), the last candidate won its only comparison against the
    top. Without the first-stage prior the ring's one contradiction turns the order over; with the default prior
    the first stage's top 10 stay the top 10 and the late winner moves up only a few places."""
    n = 50
    cands = [Candidate(f"d{i}", str(i)) for i in range(n)]
    out = rerank("q", cands, [LateWinner(n)], RankOptions(sampler="active", rounds=1))
    assert out.usage.comparisons == n and out.usage.batches == 1
    order = [r.index for r in out.results]
    assert sorted(order[:10]) == list(range(10))
    assert order.index(n - 1) >= n - 10
    bare = rerank("q", cands, [LateWinner(n)], RankOptions(sampler="active", rounds=1, prior_weight=0.0))
    assert [r.index for r in bare.results].index(n - 1) < 10  # what the prior prevents


def test_no_comparison_keeps_the_first_stage_and_one_comparison_swaps_at_most_its_pair() -> None:
    cands = [Candidate(f"d{i}", str(i)) for i in range(20)]
    none = rerank("q", cands, [LateWinner(20)], RankOptions(time_budget_ms=1e-6))
    assert none.usage.comparisons == 0 and [r.index for r in none.results] == list(range(20))
    one = rerank("q", cands, [LateWinner(20)], RankOptions(budget=1))
    assert [r.index for r in one.results][2:] == list(range(2, 20))


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        (RankOptions(sampler="heapsort", window=3), "options.window", "used by: window, skip"),
        (RankOptions(sampler="window", skip=2), "options.skip", "used by: skip"),
        (RankOptions(sampler="random", sampler_top_n=5), "options.sampler_top_n", "heapsort"),
        (RankOptions(sampler="window", window=0), "options.window", "whole number >= 1"),
        (RankOptions(rounds=0), "options.rounds", "whole number >= 1"),
    ],
)
def test_sampler_parameters_are_validated(options, field, message) -> None:
    with pytest.raises(RequestError) as err:
        rerank("q", CANDS, [BiasedOracle(REL)], options)
    assert err.value.field == field and message in str(err.value)


def test_sampler_parameters_reach_the_sampler() -> None:
    """window=1 on the window sampler asks the k ring pairs only; skip=1 makes skip the plain window; rounds
    caps the rounds; sampler_top_n=1 makes heapsort stop after the best item."""
    oracle = BiasedOracle(REL)
    assert rerank("q", CANDS, [oracle], RankOptions(sampler="window", window=1)).usage.comparisons == 6
    plain = rerank("q", CANDS, [oracle], RankOptions(sampler="skip", skip=1, window=2))
    assert plain.usage.comparisons == 12
    capped = rerank("q", CANDS, [oracle], RankOptions(sampler="sliding", rounds=2))
    assert capped.usage.batches == 2
    full = rerank("q", CANDS, [oracle], RankOptions(sampler="heapsort", sampler_top_n=5)).usage.comparisons
    one = rerank("q", CANDS, [oracle], RankOptions(sampler="heapsort", sampler_top_n=1)).usage.comparisons
    assert one < full


def test_auto_asks_all_pairs_when_the_budget_pays_for_them_and_active_otherwise() -> None:
    oracle = BiasedOracle(REL, bias=0.8)
    full = rerank("q", CANDS, [oracle], RankOptions())
    assert full.usage.comparisons == 30 and full.usage.batches == 1  # all pairs, both orders, one round
    assert [r.id for r in full.results] == ["d3", "d5", "d1", "d4", "d2", "d0"]
    sparse = rerank("q", CANDS, [oracle], RankOptions(budget=12))
    assert sparse.usage.comparisons <= 12 and sparse.usage.batches >= 2  # active: the ring, then rounds
