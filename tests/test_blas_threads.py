"""The engine picks its BLAS threads for small solves itself (aggregation/threads.py), whatever the environment.

Timings are in bench/results/blas_threads.md; these tests check the behaviour: one thread inside the
engine's fits for small problems, the previous setting restored after, shared correctly by threads.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rerank.aggregation import Comparisons, engine, threads
from rerank.aggregation.comparisons import AggregateResult
from rerank.aggregation.registry import lookup


@pytest.fixture
def two_threads():
    """Every BLAS library at two threads, as OpenBLAS starts on a 2-core machine; restored after."""
    libraries = threads._blas_libraries()
    assert libraries, "no BLAS library found by threadpoolctl"
    saved = [lib.get_num_threads() for lib in libraries]
    for lib in libraries:
        threads._set_threads(lib, 2)
    yield
    for lib, n in zip(libraries, saved, strict=True):
        threads._set_threads(lib, n)


def test_small_solves_use_one_thread_and_restore(two_threads):
    with threads.small_solves(100):
        assert set(threads.blas_threads()) == {1}
        with threads.small_solves(50):  # re-entrant
            assert set(threads.blas_threads()) == {1}
        assert set(threads.blas_threads()) == {1}
    assert set(threads.blas_threads()) == {2}


def test_large_problems_keep_the_environment(two_threads):
    with threads.small_solves(threads.SINGLE_THREAD_MAX_ITEMS + 1):
        assert set(threads.blas_threads()) == {2}


def test_engine_aggregate_runs_the_aggregator_on_one_thread(two_threads, monkeypatch):
    seen = []

    def probe(comparisons: Comparisons) -> AggregateResult:
        seen.append(threads.blas_threads())
        return lookup("aggregator", "bt")(comparisons)

    real_lookup = engine.lookup
    monkeypatch.setattr(engine, "lookup", lambda kind, name: probe if kind == "aggregator" else real_lookup(kind, name))
    c = Comparisons(30, *np.nonzero(~np.eye(30, dtype=bool)), np.random.default_rng(0).random(870))
    report = engine.aggregate(c, "bt", "symmetric")
    assert sorted(report.order) == list(range(30))
    assert seen and set(seen[0]) == {1}
    assert set(threads.blas_threads()) == {2}


@pytest.mark.parametrize("name", ["bt", "hodgerank", "pagerank", "ebc"])
def test_blas_aggregators_called_directly_pick_one_thread(two_threads, monkeypatch, name):
    seen = []
    real = threads.small_solves

    def spy(n_items):
        seen.append(n_items)
        return real(n_items)

    monkeypatch.setattr(threads, "small_solves", spy)
    c = Comparisons(20, *np.nonzero(~np.eye(20, dtype=bool)), np.random.default_rng(1).random(380))
    lookup("aggregator", name)(c)
    assert seen == [20]
    assert set(threads.blas_threads()) == {2}


def test_concurrent_requests_share_the_limit(two_threads):
    """The last request to leave restores the setting; none sees two threads while another is inside."""
    barrier = threading.Barrier(4)
    inside: list[list[int]] = []
    errors: list[BaseException] = []

    def request() -> None:
        try:
            for i in range(50):
                with threads.small_solves(100):
                    if i == 0:  # all four inside at once
                        barrier.wait(timeout=10)
                    inside.append(threads.blas_threads())
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=request) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert all(set(t) == {1} for t in inside)
    assert set(threads.blas_threads()) == {2}
