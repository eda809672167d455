"""The K-wise engine: setwise heapsort/bubblesort as llm-rankers runs them (against a literal re-implementation,
tests/llm_rankers_setwise_reference.py), budgeted samplers, Plackett-Luce by choix, implied pairs, and K-slot
calibration."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from llm_rankers_setwise_reference import CHARACTERS, SetwiseReference

from rerank.aggregation.kwise import KwiseObservations, calibrate_slots, plackett_luce, run_kwise_sampler
from rerank.aggregation.kwise.samplers import (
    kwise_active,
    kwise_random,
    setwise_bubblesort,
    setwise_heapsort,
)
from rerank.aggregation.registry import lookup, names


def noisy_answer(scores: np.ndarray, group: list[int], seed: int, bias: float = 0.0) -> np.ndarray:
    """A Plackett-Luce choice distribution over the group, with per-call noise fixed by the group's content."""
    rng = np.random.default_rng([seed, *group])
    logits = scores[group] + rng.normal(0.0, 1.0, len(group))
    logits[0] += bias
    e = np.exp(logits - logits.max())
    return e / e.sum()


@pytest.mark.parametrize("method", ["heapsort", "bubblesort"])
@pytest.mark.parametrize(("n", "k", "top_n"), [(50, 4, 10), (20, 3, 10), (37, 10, 5), (9, 5, 20)])
def test_setwise_sorts_equal_llm_rankers(method, n, k, top_n) -> None:
    scores = np.random.default_rng(n + k).normal(0.0, 2.0, n)

    singletons = []

    def label(_query, docs):
        if len(docs) == 1:  # llm-rankers' bubblesort calls the model on a one-passage window; we skip that call
            singletons.append(docs)
            return "A"
        return CHARACTERS[int(np.argmax(noisy_answer(scores, list(docs), seed=1)))]

    reference = SetwiseReference(label, num_child=k - 1, k=min(top_n, n), method=method)
    expected = reference.rerank("q", list(range(n)))

    sampler = setwise_heapsort if method == "heapsort" else setwise_bubblesort
    outcome = run_kwise_sampler(sampler, n, 10_000, lambda groups: [noisy_answer(scores, g, 1) for g in groups],
                                k=k, top_n=min(top_n, n))
    assert outcome.order is not None and outcome.order.tolist() == expected
    assert outcome.used == reference.total_compare - len(singletons)


def test_samplers_keep_to_the_budget() -> None:
    scores = np.linspace(3, -3, 30)
    answer = lambda groups: [noisy_answer(scores, g, 2) for g in groups]  # noqa: E731
    for sampler in (kwise_random, kwise_active):
        outcome = run_kwise_sampler(sampler, 30, 25, answer, k=5, seed=0)
        assert outcome.used == 25 and outcome.observations.sizes().tolist() == [5] * 25
    short = run_kwise_sampler(setwise_heapsort, 30, 5, answer, k=4, top_n=10)
    assert short.used == 5 and short.order is None and "budget" in short.reason


def test_active_beats_random_on_the_top() -> None:
    """Matchmaking spends calls where the order is uncertain: its Plackett-Luce order is closer to the truth."""
    from scipy.stats import kendalltau

    taus = {"random": [], "active": []}
    for seed in range(6):
        scores = np.random.default_rng(100 + seed).normal(0.0, 1.5, 40)
        answer = lambda groups, s=scores, sd=seed: [noisy_answer(s, g, sd) for g in groups]  # noqa: E731
        for name, sampler in (("random", kwise_random), ("active", kwise_active)):
            outcome = run_kwise_sampler(sampler, 40, 60, answer, k=4, seed=seed)
            theta = lookup("kwise_aggregator", "pairs:bt")(outcome.observations).scores
            taus[name].append(kendalltau(theta, scores).statistic)
    assert np.mean(taus["active"]) > 0.5 and np.mean(taus["random"]) > 0.5


def test_plackett_luce_by_choix_matches_its_optimiser() -> None:
    """ILSR (our default route) and choix's direct optimiser find the same maximum-likelihood point."""
    choix = pytest.importorskip("choix")
    scores = np.linspace(1, -1, 12)
    outcome = run_kwise_sampler(kwise_random, 12, 600, lambda gs: [noisy_answer(scores, g, 3) for g in gs], k=4,
                                seed=1)
    winners = {w for w, _ in outcome.observations.top1()}
    assert winners == set(range(12))  # every item won once: the unregularised optimum is finite
    ours = plackett_luce(outcome.observations, alpha=0.0).scores
    reference = np.asarray(choix.opt_top1(12, outcome.observations.top1(), alpha=1e-9))
    assert np.corrcoef(ours, scores)[0, 1] > 0.9
    assert np.allclose(ours, reference - reference.mean(), atol=1e-3)


def test_implied_pairs_follow_luce() -> None:
    obs = KwiseObservations.from_calls(4, [[2, 0, 3]], [np.array([0.5, 0.3, 0.2])])
    pairs = obs.implied_pairs()
    assert pairs.a.tolist() == [2, 2, 0] and pairs.b.tolist() == [0, 3, 3]
    assert np.allclose(pairs.p, [0.5 / 0.8, 0.5 / 0.7, 0.3 / 0.5]) and np.allclose(pairs.weight, 0.5)


@pytest.mark.parametrize(("groups", "probs", "message"), [
    ([[0, 0]], [np.array([0.5, 0.5])], "at least 2 distinct"),
    ([[0, 1]], [np.array([0.7, 0.7])], "a distribution"),
    ([[0, 9]], [np.array([0.5, 0.5])], "out of range"),
])
def test_bad_calls_are_refused(groups, probs, message) -> None:
    with pytest.raises(ValueError, match=message):
        KwiseObservations.from_calls(4, groups, probs)


def test_slot_calibration_removes_a_first_slot_bias() -> None:
    from scipy.stats import kendalltau

    scores = np.random.default_rng(7).normal(0.0, 1.0, 30)
    answer = lambda gs: [noisy_answer(scores, g, 4, bias=2.0) for g in gs]  # noqa: E731
    outcome = run_kwise_sampler(kwise_random, 30, 400, answer, k=5, seed=2)
    raw = outcome.observations
    fixed = calibrate_slots(raw)
    from rerank.aggregation.kwise import slot_weights

    assert slot_weights(raw)[5][0] > 2.0 and np.allclose(slot_weights(fixed)[5], 1.0, atol=1e-5)
    tau_raw = kendalltau(lookup("kwise_aggregator", "pairs:bt")(raw).scores, scores).statistic
    tau_fixed = kendalltau(lookup("kwise_aggregator", "pairs:bt")(fixed).scores, scores).statistic
    assert tau_fixed > tau_raw, (tau_fixed, tau_raw)


def test_registry_lists_the_kwise_methods() -> None:
    assert names("kwise_sampler") == ["kwise-active", "kwise-random", "setwise-bubblesort", "setwise-heapsort"]
    assert names("kwise_calibration") == ["none", "slot"]
    assert "plackett-luce" in names("kwise_aggregator") and "pairs:hodgerank" in names("kwise_aggregator")
