"""The batching scheduler: concurrent requests share model calls; deadlines, cancellation and big jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
import numpy as np
import pytest

from rerank.client import RerankClient, RerankError, build_rerank_request
from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig
from rerank.server.scheduler import (
    BatchScheduler,
    DeadlineExpiredError,
    QueueFullError,
    RequestCancelledError,
    SchedulerStoppedError,
    Ticket,
)
from rerank.server.testing import FakeModel, SlowFakeModel

DOCS = [(f"d{i}", f"passage {i}") for i in range(6)]  # all pairs: 30 comparisons


# --- merging ------------------------------------------------------------------------------------------
def _burst(client: RerankClient, n: int = 8) -> list:
    """``n`` requests over DOCS released together (a barrier), their replies in order."""
    start = threading.Barrier(n)

    def one(i: int):
        start.wait()
        return client.rerank(f"query {i}", DOCS)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def _eight_concurrent(config: ServerConfig, delay_s: float = 0.02) -> tuple[FakeModel, RerankServer, list[int]]:
    """8 requests released together (30 comparisons each); returns the model, server and batch sizes."""
    model = FakeModel(delay_s=delay_s)
    with RerankServer(config, models={"fake": model}) as srv, RerankClient(srv.address, timeout=30) as c:
        c.rerank("warm-up", DOCS)
        n0 = len(model.batch_sizes)
        replies = _burst(c)
        assert all(r.ids == [f"d{i}" for i in range(5, -1, -1)] for r in replies)
        sizes = model.batch_sizes[n0:]
        assert sum(sizes) == 8 * 30
        return model, srv, sizes


def test_eight_concurrent_requests_cost_one_model_call() -> None:
    _, srv, sizes = _eight_concurrent(ServerConfig(port=0, max_wait_ms=500.0, linger_ms=100.0))
    assert sizes == [8 * 30]
    merged = srv.metrics.registry.get_sample_value("rerank_batch_requests_sum", {"model": "fake"})
    assert merged == 1 + 8  # warm-up, then all eight in one call


def test_eight_concurrent_requests_without_linger_cost_about_one_model_call() -> None:
    # no linger: the first request to arrive runs at once, the others merge while it runs (a model call of
    # 0.2 s, so that on a loaded machine every other request has reached the server before it ends)
    _, _, sizes = _eight_concurrent(ServerConfig(port=0, max_wait_ms=500.0), delay_s=0.2)
    assert len(sizes) <= 2 and max(sizes) >= 7 * 30, sizes


def test_a_lone_request_does_not_wait_for_company() -> None:
    config = ServerConfig(port=0, max_wait_ms=2000.0)
    with (
        RerankServer(config, models={"fake": FakeModel()}) as srv,
        RerankClient(srv.address, timeout=30) as c,
    ):
        c.rerank("warm-up", DOCS)
        t0 = time.perf_counter()
        c.rerank("q", DOCS)
        assert time.perf_counter() - t0 < 1.5  # far below the 2 s max_wait: nobody else was in flight


def test_scheduler_splits_a_job_over_batches_and_keeps_the_order() -> None:
    model = FakeModel()
    sched = BatchScheduler(model, "fake", max_batch_items=10, max_wait_s=0.0)
    sched.start()
    try:
        items = [("q", f"a {i}", f"b {i % 7}") for i in range(25)]
        with sched.attached(Ticket()) as comparator:
            p = comparator.compare_batch(items)
        expected = 1 / (1 + np.exp(-np.array([i - i % 7 for i in range(25)], dtype=float)))
        np.testing.assert_allclose(p, expected)
        assert model.batch_sizes == [10, 10, 5]
    finally:
        sched.stop()


def test_scheduler_queue_limit_and_stopped_scheduler(wait_for) -> None:
    gate = threading.Event()
    model = FakeModel(gate=gate)
    sched = BatchScheduler(model, "fake", max_batch_items=100, max_wait_s=0.0, max_queue_items=10)
    sched.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(sched.submit, Ticket(), [("q", "a 1", "b")] * 8)
            assert model.started.wait(5)
            second = pool.submit(sched.submit, Ticket(), [("q", "a 1", "b")] * 8)
            wait_for(lambda: sched.queue_depth == 8)
            with pytest.raises(QueueFullError, match="limit of 10"):
                sched.submit(Ticket(), [("q", "a", "b")] * 3)
            gate.set()
            assert len(first.result(5)) == 8 and len(second.result(5)) == 8
    finally:
        sched.stop()


# --- deadlines ----------------------------------------------------------------------------------------
def test_deadline_expiry_with_a_slow_model_is_deadline_exceeded(wait_for, sample) -> None:
    model = SlowFakeModel(delay_s=0.6)
    config = ServerConfig(port=0, max_wait_ms=0.0)
    with RerankServer(config, models={"slow": model}) as srv, RerankClient(srv.address, timeout=30) as c:
        with pytest.raises(RerankError) as err:
            # sliding runs many rounds: after the first (slow) round the request must stop
            c.rerank("q", [(f"d{i}", f"p {i}") for i in range(10)], sampler="sliding", timeout=0.3)
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(1.5)  # the first round finishes; no later round may start
        assert model.calls <= 1
        wait_for(
            lambda: (
                sample(
                    srv.metrics.registry, "rerank_requests_total", method="Rerank", code="DEADLINE_EXCEEDED"
                )
                == 1
            )
        )


@contextmanager
def _model_held_by_a_first_request() -> Iterator[tuple[RerankServer, RerankClient, FakeModel, threading.Event, Any]]:
    """A server whose fake model is busy with a first request (held at ``gate``), so later requests queue;
    yields the server, a client, the model, the gate and the first request's future."""
    gate = threading.Event()
    model = FakeModel(gate=gate)
    config = ServerConfig(port=0, max_wait_ms=0.0)
    with (
        RerankServer(config, models={"fake": model}) as srv,
        RerankClient(srv.address, timeout=30) as c,
        ThreadPoolExecutor(1) as pool,
    ):
        blocker = pool.submit(c.rerank, "q", DOCS)
        assert model.started.wait(10)
        try:
            yield srv, c, model, gate, blocker
        finally:
            gate.set()


def test_expired_requests_queued_behind_others_never_reach_the_model(wait_for, sample) -> None:
    with _model_held_by_a_first_request() as (srv, c, model, gate, blocker), ThreadPoolExecutor(1) as pool:
        request = build_rerank_request("late", [(f"x{i}", f"p {i}") for i in range(8)])  # 56 comparisons
        late = pool.submit(c.stub.Rerank, request, timeout=2.0)
        wait_for(lambda: srv.schedulers["fake"].queue_depth == 56)  # queued before its deadline passes
        with pytest.raises(grpc.RpcError) as err:
            late.result(30)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        wait_for(lambda: srv.schedulers["fake"].queue_depth == 0)
        gate.set()
        assert blocker.result(10).ids[0] == "d5"
        assert model.items == 30  # only the blocker's comparisons ran
        dropped = sample(srv.metrics.registry, "rerank_dropped_items_total", model="fake", reason="deadline")
        assert dropped == 56  # counted as dropped by the deadline, not as cancelled


class _SecondCallHeld(FakeModel):
    """A FakeModel whose second call waits for ``release``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release = threading.Event()
        self._seen = 0

    def compare_batch(self, items):
        self._seen += 1
        if self._seen == 2:
            self.release.wait()
        return super().compare_batch(items)


def test_time_budget_gives_a_partial_ranking_not_an_error() -> None:
    model = _SecondCallHeld()
    config = ServerConfig(port=0, max_wait_ms=0.0)
    docs = [(f"d{i}", f"p {i}") for i in range(10)]
    with (
        RerankServer(config, models={"fake": model}) as srv,
        RerankClient(srv.address, timeout=30) as c,
        ThreadPoolExecutor(1) as pool,
    ):
        # the 200 ms time budget runs out while the second round is held: no third round starts
        future = pool.submit(c.rerank, "q", docs, sampler="sliding", time_budget_ms=200)
        time.sleep(0.3)  # past the time budget: only a clock can say so
        model.release.set()
        reply = future.result(30)
        assert reply.usage.partial and 1 <= reply.usage.batches <= 2
        assert sorted(reply.ids) == sorted(d for d, _ in docs)
    # anytime under a caller deadline shorter than the time budget: a partial answer, not DEADLINE_EXCEEDED.
    # The server stops sampling 0.25 s before a 3 s deadline; rounds of 0.06 s stay far inside that margin
    # (58 rounds of sliding over 50 candidates would take 3.5 s).
    slow = SlowFakeModel(delay_s=0.06)
    many = [(f"d{i}", f"p {i}") for i in range(50)]
    with RerankServer(config, models={"slow": slow}) as srv, RerankClient(srv.address, timeout=30) as c:
        reply = c.rerank("q", many, sampler="sliding", time_budget_ms=100_000, timeout=3.0)
        assert reply.usage.partial and sorted(reply.ids) == sorted(d for d, _ in many)
        assert srv.metrics.registry.get_sample_value("rerank_partial_rankings_total") == 1


# --- cancellation -------------------------------------------------------------------------------------
def test_cancelled_request_is_dropped_from_the_queue(wait_for, sample) -> None:
    with _model_held_by_a_first_request() as (srv, c, model, gate, blocker):
        request = build_rerank_request("cancel me", [(f"x{i}", f"p {i}") for i in range(8)])
        future = c.stub.Rerank.future(request, timeout=30)
        wait_for(lambda: srv.schedulers["fake"].queue_depth == 56)
        assert future.cancel()
        wait_for(lambda: srv.schedulers["fake"].queue_depth == 0)
        gate.set()
        assert blocker.result(10).ids[0] == "d5"
        assert model.items == 30
        wait_for(
            lambda: (
                sample(srv.metrics.registry, "rerank_dropped_items_total", model="fake", reason="cancelled")
                == 56
            )
        )


def test_ticket_cancel_wakes_a_waiting_submit(wait_for) -> None:
    gate = threading.Event()
    sched = BatchScheduler(FakeModel(gate=gate), "fake", max_wait_s=0.0)
    sched.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            pool.submit(sched.submit, Ticket(), [("q", "a", "b")])  # occupies the worker
            ticket = Ticket()
            waiting = pool.submit(sched.submit, ticket, [("q", "a", "b")] * 5)
            wait_for(lambda: sched.queue_depth == 5)
            ticket.cancel()
            with pytest.raises(RequestCancelledError):
                waiting.result(5)
            assert sched.queue_depth == 0
            gate.set()
        with pytest.raises(DeadlineExpiredError):
            sched.submit(Ticket(deadline=time.monotonic() - 1), [("q", "a", "b")])
    finally:
        sched.stop()


def test_overlap_tokenizes_ahead_and_answers_as_without(tmp_path) -> None:
    """``overlap=True`` (tokenize on the worker, run on a second thread, one batch handed off between them)
    gives every concurrent request the p of a plain call, with its tokenize/run share and queue time."""
    pytest.importorskip("torch")
    from rerank.models import load_model
    from rerank.models.testing import build_tiny_bert_classifier

    model = load_model(build_tiny_bert_classifier(tmp_path / "duo"), backend="torch", kind="duo-cross-encoder")
    jobs = [[("q", f"alpha {i} {j}", f"beta {j} plants") for j in range(12)] for i in range(8)]
    expected = [model.compare_batch(items).p for items in jobs]
    sched = BatchScheduler(model, "duo", max_batch_items=16, max_wait_s=0.0, overlap=True)
    assert sched.overlap
    sched.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda items: sched.submit(Ticket(), items), jobs))
    finally:
        sched.stop()
    for got, want in zip(answers, expected, strict=True):
        np.testing.assert_allclose(got.p, want, atol=1e-6)
    assert sched.items == 96 and sched.calls >= 6
    assert all(a.stats.tokenize_s > 0 and a.stats.run_s > 0 for a in answers)
    assert BatchScheduler(FakeModel(), "fake", overlap=True).overlap is False  # no stages: plain calls


# --- streams ------------------------------------------------------------------------------------------
class _PairedCalls(FakeModel):
    """Each call waits until a second call has started: it only answers when two calls run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.both = threading.Barrier(2, timeout=20)

    def compare_batch(self, items):
        if len(items) > 30:  # not the warm-up
            self.both.wait()
        return super().compare_batch(items)


def test_streams_run_a_burst_as_concurrent_calls_of_whole_requests() -> None:
    """``model_streams = 2``: a merged batch of 8 requests runs as two concurrent model calls of 4 requests each
    (a request's comparisons are never split between them), with the same answers."""
    model = _PairedCalls()
    config = ServerConfig(port=0, max_wait_ms=500.0, linger_ms=200.0, model_streams=2)
    with RerankServer(config, models={"fake": model}) as srv, RerankClient(srv.address, timeout=60) as c:
        assert srv.schedulers["fake"].streams == 2
        c.rerank("warm-up", DOCS[:3])
        n0 = len(model.batch_sizes)
        replies = _burst(c)
    assert all(r.ids == [f"d{i}" for i in range(5, -1, -1)] for r in replies)
    assert sorted(model.batch_sizes[n0:]) == [4 * 30, 4 * 30]


def test_streams_split_whole_jobs_evenly_and_isolate_a_failing_request() -> None:
    from rerank.server.scheduler import _split

    jobs = [object() for _ in range(5)]
    slices = [(j, 0, n) for j, n in zip(jobs, [10, 10, 10, 10, 40], strict=True)]
    assert [[s[2] for s in g] for g in _split(slices, 2)] == [[10, 10, 10, 10], [40]]
    assert _split(slices[:1], 4) == [slices[:1]]
    assert [[s[2] for s in g] for g in _split(slices, 8)] == [[10, 10], [10, 10], [40]]  # no group under 1/8
    model = FakeModel(delay_s=0.05, fail_marker="boom")
    sched = BatchScheduler(model, "fake", max_wait_s=0.0, linger_s=0.1, streams=2)
    sched.start()
    try:
        def one(text: str):
            with sched.attached(Ticket()) as comparator:
                return comparator.compare_batch([("q", f"{text} 3", "b 1"), ("q", "a 1", "b 2")])

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(one, t) for t in ("a", "boom", "c", "d")]
        for f, text in zip(futures, ("a", "boom", "c", "d"), strict=True):
            if text == "boom":
                with pytest.raises(ValueError):
                    f.result()
            else:
                np.testing.assert_allclose(np.asarray(f.result()), 1 / (1 + np.exp(-np.array([2.0, -1.0]))))
    finally:
        sched.stop()
    with pytest.raises(ValueError, match="streams"):
        BatchScheduler(model, "fake", streams=0)


class _HeldSubmit:
    """The scheduler's stream pool, with ``submit`` held until the test lets it go: the window in which a loaded
    machine once paused the batch worker while ``stop()`` shut the pool down (a fresh-clone CI run beside a
    second one: "batch worker of minilm failed ... cannot schedule new futures after shutdown")."""

    def __init__(self, pool: Any) -> None:
        self.pool, self.entered, self.resume = pool, threading.Event(), threading.Event()

    def submit(self, *args: Any) -> Any:
        self.entered.set()
        assert self.resume.wait(10)
        return self.pool.submit(*args)

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait)


def test_a_batch_taken_as_the_streams_shut_down_fails_quietly(caplog) -> None:
    sched = BatchScheduler(FakeModel(), "fake", max_wait_s=0.0, linger_s=0.01, streams=2)  # no inline fast path
    held = _HeldSubmit(sched._streams)
    sched._streams = held
    sched.start()
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(sched.submit, Ticket(), [("q", "a 1", "b")] * 4)
        assert held.entered.wait(10)
        sched.stop(timeout=0.2, reason="server shutting down")  # the worker is still inside _run
        with pytest.raises(SchedulerStoppedError):
            call.result(10)
        held.resume.set()
        sched._thread.join(10)
    assert not sched._thread.is_alive()
    assert sched.wait_calls(1.0)  # no stream call is counted as running
    assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records]
