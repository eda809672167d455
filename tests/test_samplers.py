"""Tests of the comparison samplers and of the sampling driver."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank.aggregation.aggregators.bt import bradley_terry
from rerank.aggregation.comparisons import sigmoid
from rerank.aggregation.samplers import SAMPLERS, SamplerReport, run_sampler

NAMES = sorted(SAMPLERS)
SORTING = ["heapsort", "quicksort", "sliding"]


def random_comparator(seed: int):
    rng = np.random.default_rng(seed)

    def compare(pairs):
        return rng.random(len(pairs))

    return compare


def perfect_comparator(true_score: np.ndarray):
    """p = 1 when a is truly better than b, else 0."""

    def compare(pairs):
        arr = np.asarray(pairs).reshape(-1, 2)
        return (true_score[arr[:, 0]] > true_score[arr[:, 1]]).astype(float)

    return compare


def hidden_order(k: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A random true score per item, and the true order best first."""
    score = np.random.default_rng(seed).permutation(k).astype(float)
    return score, np.argsort(-score)


def pair_list(out) -> list[tuple[int, int]]:
    return list(zip(out.comparisons.a.tolist(), out.comparisons.b.tolist(), strict=True))


def unordered(out) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in pair_list(out)}


def run(name, k, budget, compare, **kw):
    return run_sampler(SAMPLERS[name], k, budget, compare, **kw)


def test_registry_names():
    assert set(SAMPLERS) == {"auto", "all", "random", "window", "skip", "heapsort", "quicksort", "sliding",
                             "active", "refine"}


def test_every_sampler_declares_the_parameters_its_function_takes():
    import inspect

    from rerank.aggregation.samplers import PARAMETER_KEYWORDS, SAMPLER_PARAMETERS

    assert set(SAMPLER_PARAMETERS) == set(SAMPLERS)
    for name, params in SAMPLER_PARAMETERS.items():
        signature = inspect.signature(SAMPLERS[name]).parameters
        assert all(PARAMETER_KEYWORDS[p] in signature for p in params), name
        assert ("m" in signature) == ("window" in params) and ("lam" in signature) == ("skip" in params), name


def test_max_rounds_stops_between_rounds():
    out = run("sliding", 12, 200, random_comparator(0), seed=0, max_rounds=3)
    assert out.rounds == 3 and out.reason == "3 rounds done" and out.order is None and not out.timed_out
    with pytest.raises(ValueError, match="max_rounds"):
        run("sliding", 12, 200, random_comparator(0), max_rounds=0)


@pytest.mark.parametrize(("budget", "both", "expected"), [(90, None, "all"), (45, False, "all"), (89, None, "active")])
def test_auto_runs_all_when_the_budget_pays_for_every_pair(budget, both, expected):
    def compare(pairs):  # deterministic, so both runs see the same answers
        return np.array([((7 * a + 3 * b) % 10 + 0.5) / 10 for a, b in pairs])

    got = run("auto", 10, budget, compare, seed=4, both_orders=both)
    ref = run(expected, 10, budget, compare, seed=4, both_orders=both)
    assert got.round_sizes == ref.round_sizes
    assert np.array_equal(got.comparisons.a, ref.comparisons.a) and np.array_equal(got.comparisons.b, ref.comparisons.b)


# --------------------------------------------------------------------------- properties of every sampler
#: Samplers that ask each unordered pair at most once in one order (a decided pair is never asked again);
#: ``active`` and ``refine`` may ask a pair a second time, in its other order.
ONCE_PER_PAIR = ["all", "random", "window", "skip", "heapsort", "quicksort", "sliding"]
STATIC = ["all", "random", "window", "skip"]
PROPERTY = settings(max_examples=60, deadline=None)


@PROPERTY
@given(
    name=st.sampled_from(NAMES),
    k=st.integers(0, 24),
    frac=st.floats(0.0, 1.0),
    extra=st.integers(0, 3),
    both=st.sampled_from([None, True, False]),
    top_n=st.integers(0, 12),
    seed=st.integers(0, 2**16),
)
def test_within_budget_and_unique_where_promised(name, k, frac, extra, both, top_n, seed):
    budget = int(frac * k * (k - 1)) + extra
    out = run(name, k, budget, random_comparator(seed), seed=seed, both_orders=both, top_n=top_n)
    assert out.used <= min(budget, k * (k - 1))
    assert sum(out.round_sizes) == out.used and all(size > 0 for size in out.round_sizes)
    c = out.comparisons
    assert np.all(c.a != c.b)
    assert np.all((c.a >= 0) & (c.a < k) & (c.b >= 0) & (c.b < k))
    pairs = pair_list(out)
    assert len(set(pairs)) == len(pairs), "an ordered pair was asked twice"
    if name in ONCE_PER_PAIR and both is False:
        assert len(unordered(out)) == len(pairs), "an unordered pair was asked twice in one order"
    if both and name != "refine":  # both orders side by side; a single call left over takes one order
        one_sided = [pair for pair in pairs if (pair[1], pair[0]) not in set(pairs)]
        assert len(one_sided) <= 1, one_sided
    if out.order is not None:
        assert sorted(out.order.tolist()) == list(range(k))


@PROPERTY
@given(
    name=st.sampled_from(NAMES),
    k=st.integers(2, 14),
    both=st.booleans(),
    top_n=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_full_budget_on_a_consistent_comparator_recovers_the_true_order(name, k, both, top_n, seed, data):
    """Budget k(k-1), p = 1 when the first item is truly better, else 0: the static samplers ask every pair
    and every aggregator gets the whole true order back (duoBERT's first-slot ``sum`` needs both orders); the
    sorting samplers sort the true top ``top_n``; ``active`` + Bradley-Terry finds it; ``refine`` sorts all."""
    from rerank.aggregation.aggregators import AGGREGATORS

    score = np.array(data.draw(st.permutations(range(k)), label="true scores"), dtype=float)
    truth = np.argsort(-score)
    out = run(name, k, k * (k - 1), perfect_comparator(score), seed=seed, both_orders=both, top_n=top_n)
    top = min(top_n, k)
    if name in STATIC or name == "auto":
        assert len(unordered(out)) == k * (k - 1) // 2
        for agg in sorted(AGGREGATORS):
            if agg == "sum" and not both:
                continue
            ranking = AGGREGATORS[agg](out.comparisons).ranking()
            assert ranking.tolist() == truth.tolist(), agg
    elif name in SORTING:
        assert out.order[:top].tolist() == truth[:top].tolist()
    elif name == "active":
        assert bradley_terry(out.comparisons).ranking()[:top].tolist() == truth[:top].tolist()
    else:
        assert out.order.tolist() == truth.tolist()


# --------------------------------------------------------------------------- static samplers: which pairs
def test_all_pairs_both_orders():
    k = 8
    out = run("all", k, k * (k - 1), random_comparator(0))
    assert out.used == k * (k - 1)
    assert set(pair_list(out)) == {(a, b) for a in range(k) for b in range(k) if a != b}
    assert out.rounds == 1


def test_all_pairs_nearest_first():
    k = 8
    out = run("all", k, 2 * (k - 1) + 1, random_comparator(0))
    pairs = pair_list(out)
    assert len(pairs) == 2 * (k - 1) + 1
    assert {(min(p), max(p)) for p in pairs[:-1]} == {(i, i + 1) for i in range(k - 1)}
    assert pairs[-1] in {(0, 2), (2, 0)}  # the odd call left over: one order of the next pair


def test_random_pairs_distinct_and_counted():
    k = 12
    out = run("random", k, 30, random_comparator(0), seed=3)
    assert out.used == 30 and len(unordered(out)) == 30
    out2 = run("random", k, 30, random_comparator(0), seed=3, both_orders=True)
    pairs = pair_list(out2)
    assert out2.used == 30 and len(unordered(out2)) == 15
    assert all((b, a) in pairs for a, b in pairs)


def test_random_pairs_random_slots():
    k = 30
    out = run("random", k, 300, random_comparator(0), seed=5)
    first_is_smaller = np.mean(out.comparisons.a < out.comparisons.b)
    assert 0.35 < first_is_smaller < 0.65


def test_window_m1_is_ring():
    k = 10
    ring = {(min(i, (i + 1) % k), max(i, (i + 1) % k)) for i in range(k)}
    out = run("window", k, k * (k - 1), random_comparator(0), m=1)
    assert unordered(out) == ring and out.used == k
    # without m, a budget of k gives the same ring
    out = run("window", k, k, random_comparator(0))
    assert unordered(out) == ring


def test_window_grows_with_budget():
    k = 10
    out = run("window", k, 2 * k + 3, random_comparator(0))
    dist = {min(b - a, k - (b - a)) for a, b in unordered(out)}
    assert out.used == 2 * k + 3 and dist == {1, 2, 3}
    out = run("window", k, 1000, random_comparator(0), m=2, both_orders=True)
    assert out.used == 4 * k


def test_skip_window_dilated_pairs():
    k, lam = 10, 3
    want = {(min(i, (i + lam) % k), max(i, (i + lam) % k)) for i in range(k)}
    out = run("skip", k, 1000, random_comparator(0), lam=lam, m=1)
    assert unordered(out) == want
    want2 = want | {(min(i, (i + 2 * lam) % k), max(i, (i + 2 * lam) % k)) for i in range(k)}
    out = run("skip", k, 1000, random_comparator(0), lam=lam, m=2)
    assert unordered(out) == want2


@pytest.mark.parametrize(("k", "lam"), [(9, 2), (10, 3), (12, 5), (15, 2)])
def test_skip_window_default_dilation_is_the_smallest_coprime_above_1(k, lam):
    """A budget of k: the first ring, item i with i + lam (mod k), lam the smallest lam >= 2 with gcd(lam, k) = 1."""
    out = run("skip", k, k, random_comparator(0))
    assert unordered(out) == {(min(i, (i + lam) % k), max(i, (i + lam) % k)) for i in range(k)}


def test_skip_window_runs_out_of_pairs():
    k = 10
    out = run("skip", k, 45, random_comparator(0), lam=2)
    dists = {min(b - a, k - (b - a)) for a, b in unordered(out)}
    assert dists == {2, 4}
    assert out.used == 20 and "20 distinct pairs" in out.reason
    # the default dilation avoids that: all pairs are reachable
    out = run("skip", k, 45, random_comparator(0))
    assert out.used == 45


# --------------------------------------------------------------------------- sorting samplers
class Judge:
    """A consistent comparator for the reference algorithms: ``beats(x, y)`` says whether x is truly better
    and records each distinct unordered pair it was asked, in order (a decided pair costs nothing again)."""

    def __init__(self, score: np.ndarray) -> None:
        self.score = score
        self.asked: list[tuple[int, int]] = []

    def beats(self, x: int, y: int) -> bool:
        key = (min(x, y), max(x, y))
        if key not in self.asked:
            self.asked.append(key)
        return bool(self.score[x] > self.score[y])


def reference_heapsort(score: np.ndarray, top_n: int) -> tuple[list[int], Judge]:
    """Textbook heapsort selection (Williams 1964; PRP's heapsort, Qin et al. 2024): bottom-up heapify, then
    pop the root ``top_n`` times; a sift-down compares the two children, then the better child with the
    parent."""
    judge, heap, k = Judge(score), list(range(len(score))), len(score)

    def sift(pos: int, size: int) -> None:
        while 2 * pos + 1 < size:
            child = 2 * pos + 1
            if child + 1 < size and judge.beats(heap[child + 1], heap[child]):
                child += 1
            if not judge.beats(heap[child], heap[pos]):
                return
            heap[pos], heap[child] = heap[child], heap[pos]
            pos = child

    if min(top_n, k) == 0:
        return [], judge  # nothing to select: no heap to build
    for pos in range(k // 2 - 1, -1, -1):
        sift(pos, k)
    popped, size = [], k
    while len(popped) < min(top_n, k):
        popped.append(heap[0])
        size -= 1
        heap[0] = heap[size]
        if len(popped) < top_n and size > 1:
            sift(0, size)
    return popped, judge


def reference_bubble(score: np.ndarray, top_n: int) -> tuple[list[int], Judge]:
    """PRP's sliding window (Qin et al. 2024) as sequential bubble passes, bottom to top, window 2, step 1."""
    judge, k = Judge(score), len(score)
    order = list(range(k))
    for t in range(min(top_n, k - 1)):
        for i in range(k - 2, t - 1, -1):
            if judge.beats(order[i + 1], order[i]):
                order[i], order[i + 1] = order[i + 1], order[i]
    return order, judge


def reference_kwiksort(score: np.ndarray, top_n: int, pivot_of) -> tuple[list[int], list[set[tuple[int, int]]]]:
    """Partial KwikSort (Ailon et al. 2008) split one depth at a time: each part that reaches into the top
    ``top_n`` is split around ``pivot_of(depth, part)`` into winners, pivot, losers. Returns the order and
    the pairs of each depth."""
    parts: list[tuple[list[int], bool]] = [(list(range(len(score))), True)] if len(score) else []
    rounds: list[set[tuple[int, int]]] = []
    while True:
        starts = np.cumsum([0] + [len(items) for items, _ in parts])
        targets = [i for i, (items, open_) in enumerate(parts) if open_ and len(items) >= 2 and starts[i] < top_n]
        if not targets:
            return [x for items, _ in parts for x in items], rounds
        wanted: set[tuple[int, int]] = set()
        new_parts: list[tuple[list[int], bool]] = []
        for i, (items, open_) in enumerate(parts):
            if i not in targets:
                new_parts.append((items, open_))
                continue
            pv = pivot_of(len(rounds), items)
            wins = [x for x in items if x != pv and score[x] > score[pv]]
            losses = [x for x in items if x != pv and score[x] < score[pv]]
            wanted |= {(min(x, pv), max(x, pv)) for x in items if x != pv}
            new_parts += [(chunk, open_chunk and len(chunk) > 1)
                          for chunk, open_chunk in ((wins, True), ([pv], False), (losses, True)) if chunk]
        parts = new_parts
        rounds.append(wanted)


def rounds_of(out) -> list[set[tuple[int, int]]]:
    edges = np.cumsum([0, *out.round_sizes])
    pairs = pair_list(out)
    return [{(min(a, b), max(a, b)) for a, b in pairs[lo:hi]} for lo, hi in itertools.pairwise(edges)]


SORT_CASE = dict(k=st.integers(0, 40), top_n=st.integers(0, 12), both=st.booleans(), seed=st.integers(0, 2**16),
                 data=st.data())


def test_heapsort_call_count_on_a_known_input():
    """k = 7 in true order (already a max-heap): heapify asks 2 pairs per inner node (children, then the
    better child with its parent) = 6; the first pop is free, the second sifts item 6 down two levels past the
    known pair (1, 2): (1, 6), then (3, 4) known and (3, 6): 8 in all."""
    score = np.arange(7, 0, -1, dtype=float)
    for top_n, calls in ((1, 6), (2, 8)):
        out = run("heapsort", 7, 42, perfect_comparator(score), top_n=top_n)
        assert out.used == calls and len(reference_heapsort(score, top_n)[1].asked) == calls
        assert out.order[:top_n].tolist() == list(range(top_n))


@PROPERTY
@given(name=st.sampled_from(["heapsort", "sliding"]), **SORT_CASE)
def test_heapsort_and_sliding_ask_what_their_sequential_reference_asks(name, k, top_n, both, seed, data):
    """The batched samplers ask exactly the pairs of the sequential textbook algorithm (heapify level by level
    and pipelined bubble passes change the rounds, not the comparisons) and end in its order."""
    score = np.array(data.draw(st.permutations(range(k))), dtype=float)
    order, judge = {"heapsort": reference_heapsort, "sliding": reference_bubble}[name](score, top_n)
    out = run(name, k, k * (k - 1), perfect_comparator(score), seed=seed, both_orders=both, top_n=top_n)
    assert unordered(out) == set(judge.asked) and out.used == len(judge.asked) * (2 if both else 1)
    assert out.order[: len(order)].tolist() == order


@PROPERTY
@given(**SORT_CASE)
def test_quicksort_asks_what_kwiksort_asks_with_the_same_pivots(k, top_n, both, seed, data):
    """Each round of the sampler is one depth of KwikSort: the reference takes the pivot of every part from
    the sampler's round (the item in all of its pairs there) and must then ask the same pairs and end in the
    same order."""
    score = np.array(data.draw(st.permutations(range(k))), dtype=float)
    out = run("quicksort", k, k * (k - 1), perfect_comparator(score), seed=seed, both_orders=both, top_n=top_n)
    asked = rounds_of(out)

    def pivot_of(depth: int, items: list[int]) -> int:
        star = [pair for pair in asked[depth] if pair[0] in items and pair[1] in items]
        centres = set(items).intersection(*map(set, star))
        assert centres and len(star) == len(items) - 1, (depth, items, star)
        return min(centres)

    order, rounds = reference_kwiksort(score, top_n, pivot_of)
    assert asked == rounds and out.order.tolist() == order


def test_active_asks_the_pairs_of_highest_uncertainty():
    """Items 1 and 3 are a coin flip (equal scores) and not neighbours in the first ring, the other pairs are
    settled to various degrees: the first one-pair round after the ring (both orders, so the 6 ring pairs
    are used up and 9 are left) goes to the open pair most often, at over 3x a uniform draw's share (the pick
    is drawn by Gumbel top-k with probability proportional to the utility: the uncertainty reduction times
    the chance that the pair's order is open); seeds fixed, so the count is exact."""
    score = np.array([6.0, 3.0, 5.0, 3.0, 1.0, 0.0])
    k, seeds = len(score), 30

    def compare(pairs):
        arr = np.asarray(pairs)
        return sigmoid(score[arr[:, 0]] - score[arr[:, 1]])

    picks: dict[tuple[int, int], int] = {}
    for seed in range(seeds):
        out = run("active", k, 2 * k + 2, compare, seed=seed, top_n=k, batch_size=1, both_orders=True)
        assert out.round_sizes == [2 * k, 2]
        (pick,) = rounds_of(out)[1]
        picks[pick] = picks.get(pick, 0) + 1
    assert max(picks, key=picks.get) == (1, 3), picks
    assert picks[(1, 3)] >= 3 * seeds / 9, picks


@pytest.mark.parametrize("name", SORTING)
def test_sorting_partial_budget(name):
    k = 25
    score, _ = hidden_order(k)
    for budget in (0, 1, 7, 30):
        out = run(name, k, budget, perfect_comparator(score), seed=1, top_n=10)
        assert out.used <= budget
        assert sorted(out.order.tolist()) == list(range(k))


def test_heapsort_batches_heapify():
    k = 31
    score, _ = hidden_order(k)
    out = run("heapsort", k, 1000, perfect_comparator(score), top_n=3)
    assert out.round_sizes[0] == 8  # the 8 sift-downs of level 3 compare their children together
    assert out.rounds < out.used


def test_heapsort_uses_fewer_than_all_pairs():
    k = 50
    score, truth = hidden_order(k)
    out = run("heapsort", k, k * (k - 1), perfect_comparator(score), top_n=10)
    assert out.used < 4 * k * np.log2(k)
    assert out.order[:10].tolist() == truth[:10].tolist()


def test_quicksort_rounds_are_depths():
    k = 40
    score, truth = hidden_order(k)
    out = run("quicksort", k, k * (k - 1), perfect_comparator(score), seed=4, top_n=5)
    assert out.round_sizes[0] == k - 1
    assert out.rounds <= 3 * int(np.log2(k)) + 3
    assert out.order[:5].tolist() == truth[:5].tolist()


def test_sliding_pipelined_equals_sequential_bubble():
    """The pipelined passes give exactly the order of plain sequential bubble passes."""
    k, top_n = 15, 4
    M = np.random.default_rng(3).random((k, k))
    M = np.triu(M, 1) + np.tril(1 - M.T, -1)  # p(a, b) = 1 - p(b, a), intransitive

    def compare(pairs):
        arr = np.asarray(pairs)
        return M[arr[:, 0], arr[:, 1]]

    order = list(range(k))
    for t in range(top_n):
        for i in range(k - 2, t - 1, -1):
            if M[order[i + 1], order[i]] >= 0.5:
                order[i], order[i + 1] = order[i + 1], order[i]
    out = run("sliding", k, k * (k - 1), compare, top_n=top_n)
    assert out.order.tolist() == order
    assert out.rounds <= k + 2 * top_n


# --------------------------------------------------------------------------- the driver
def test_deadline_after_first_round():
    k = 20
    score, _ = hidden_order(k)
    times = iter([0.0, 10.0, 20.0, 30.0])
    out = run("sliding", k, 1000, perfect_comparator(score), deadline=5.0, clock=lambda: next(times), top_n=3)
    assert out.timed_out and not out.stopped_early
    assert out.rounds == 1 and out.used == out.round_sizes[0] > 0
    assert out.order is None and "time" in out.reason


def test_wrong_number_of_answers_raises():
    with pytest.raises(RuntimeError):
        run("all", 5, 20, lambda pairs: np.full(len(pairs) - 1, 0.5))


def test_sampler_over_budget_raises():
    def greedy(n_items, budget, *, rng, both_orders=None, top_n=10):
        yield [(0, 1)] * (budget + 1)
        return SamplerReport()

    with pytest.raises(RuntimeError, match="over a budget"):
        run_sampler(greedy, 3, 4, random_comparator(0))


def test_bad_arguments():
    with pytest.raises(ValueError):
        run("window", 5, -1, random_comparator(0))
    with pytest.raises(ValueError):
        run("skip", 5, 10, random_comparator(0), lam=0)
    with pytest.raises(ValueError):
        run("active", 5, 10, random_comparator(0), confidence=1.5)
    with pytest.raises(TypeError):
        run("heapsort", 5, 10, random_comparator(0), no_such_option=1)


# --------------------------------------------------------------------------- active
def test_active_stops_early_when_clear():
    k = 30
    score, truth = hidden_order(k)

    def compare(pairs):
        arr = np.asarray(pairs)
        return sigmoid(3.0 * (score[arr[:, 0]] - score[arr[:, 1]]))

    budget = k * (k - 1)
    out = run("active", k, budget, compare, seed=0, top_n=5)
    assert out.stopped_early and "95%" in out.reason
    assert out.used < budget // 2
    fit = bradley_terry(out.comparisons)
    assert np.argsort(-fit.scores)[:5].tolist() == truth[:5].tolist()
    # at a higher confidence it needs at least as many comparisons
    strict = run("active", k, budget, compare, seed=0, top_n=5, confidence=0.999)
    assert strict.used >= out.used


@pytest.mark.parametrize("both", [None, True])
def test_active_noisy_respects_budget(both):
    k = 30
    score, _ = hidden_order(k)
    rng = np.random.default_rng(0)

    def compare(pairs):
        arr = np.asarray(pairs)
        p = sigmoid(0.05 * (score[arr[:, 0]] - score[arr[:, 1]]))
        return (rng.random(len(p)) < p).astype(float)

    budget = 150
    out = run("active", k, budget, compare, seed=1, top_n=5, both_orders=both)
    assert out.used <= budget
    assert not out.stopped_early or out.used < budget
    assert out.round_sizes[0] == k * (2 if both else 1)  # the ring first
    assert max(out.round_sizes[1:]) <= (2 if both else 1) * 8


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_seed(name):
    k = 16
    a = run(name, k, 60, random_comparator(9), seed=11)
    b = run(name, k, 60, random_comparator(9), seed=11)
    assert pair_list(a) == pair_list(b)
    assert a.round_sizes == b.round_sizes
    if a.order is not None:
        assert a.order.tolist() == b.order.tolist()


def test_refine_sorts_with_a_perfect_comparator_and_beats_the_first_stage() -> None:
    k = 20
    score, truth = hidden_order(k)

    def perfect(pairs):
        return np.array([1.0 if score[a] > score[b] else 0.0 for a, b in pairs])

    out = run_sampler(SAMPLERS["refine"], k, k * (k - 1) // 2, perfect, seed=1)
    assert out.used <= k * (k - 1) // 2
    assert out.order is not None and sorted(out.order.tolist()) == list(range(k))
    assert list(out.order) == list(truth)
    # every round is a set of disjoint pairs (one model batch, each item at most once)
    start = 0
    for size in out.round_sizes:
        window = slice(start, start + size)
        items = out.comparisons.a[window].tolist() + out.comparisons.b[window].tolist()
        assert len(items) == len(set(items))
        start += size
