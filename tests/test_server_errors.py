"""Every rejection carries a precise status: INVALID_ARGUMENT naming the field, RESOURCE_EXHAUSTED with the
limit; overload never takes the server down."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from rerank.client import RerankClient, RerankError, RetryPolicy, build_rerank_request
from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig
from rerank.server.testing import FakeModel

DOCS = [(f"d{i}", f"passage {i}") for i in range(6)]


@pytest.fixture(scope="module")
def server():
    config = ServerConfig(port=0, max_candidates=50, max_wait_ms=1.0)
    srv = RerankServer(config, models={"fake": FakeModel(max_chars=100), "fake-b": FakeModel()})
    srv.start()
    yield srv
    srv.stop(grace=0)


@pytest.fixture(scope="module")
def client(server):
    with RerankClient(server.address, timeout=30) as c:
        yield c


def test_the_fake_ranks_by_its_relevance(client) -> None:
    assert client.rerank("q", DOCS).ids == [f"d{i}" for i in range(5, -1, -1)]


@pytest.mark.parametrize(
    ("query", "docs", "options", "field"),
    [
        ("q", DOCS, {"models": ["nope"]}, "models[0]"),
        ("q", DOCS, {"models": ["fake", "fake"]}, "models[1]"),
        ("q", DOCS, {"sampler": "nope"}, "options.sampler"),
        ("q", DOCS, {"aggregator": "nope"}, "options.aggregator"),
        ("q", DOCS, {"calibration": "nope"}, "options.calibration"),
        ("q", DOCS, {"models": ["fake", "fake-b"], "fusion": "nope"}, "options.fusion"),
        ("", DOCS, {}, "query"),
        ("   ", DOCS, {}, "query"),
        ("q", [], {}, "candidates"),
        ("q", [("a", "x 1"), ("a", "y 2")], {}, "candidates[1].id"),
        ("q", [("", "x 1")], {}, "candidates[0].id"),
        ("q", [("a", "x 1"), ("b", " ")], {}, "candidates[1].text"),
        ("q", [("a", "x 1"), ("b", "y" * 101)], {}, "candidates[1].text"),
        ("q" * 101, DOCS, {}, "query"),
        ("q", DOCS, {"budget": 1.5}, "options.fraction"),
        ("q", DOCS, {"budget": 0}, "options.comparisons"),
        ("q", DOCS, {"sampler": "heapsort", "window": 2}, "options.window"),
        ("q", DOCS, {"sampler": "window", "skip": 2}, "options.skip"),
        ("q", DOCS, {"sampler": "all", "sampler_top_n": 3}, "options.sampler_top_n"),
        ("q", DOCS, {"rounds": 0}, "options.rounds"),
    ],
)
def test_invalid_argument_names_the_field(client, query, docs, options, field) -> None:
    with pytest.raises(RerankError) as err:
        client.rerank(query, docs, **options)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.field == field
    assert err.value.details.startswith(field)


@pytest.mark.parametrize(
    ("budget", "field", "asked"),
    [(0.01, "options.fraction", "a fraction 0.01 of k(k-1) = 30"), (0, "options.comparisons", "0 resolves")],
)
def test_a_budget_below_the_minimum_is_the_shared_rule(client, budget, field, asked) -> None:
    """The same rule and message as the Python and CLI faces (rerank.pipeline.validate_options)."""
    with pytest.raises(RerankError) as err:
        client.rerank("q", DOCS, budget=budget)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.field == field
    assert asked in err.value.details and "k = 6 candidates" in err.value.details
    assert "at least 1 is needed" in err.value.details


def test_sampler_parameters_reach_the_sampler_over_grpc(client) -> None:
    assert client.rerank("q", DOCS, sampler="window", window=1).usage.comparisons == 6  # the ring only
    assert client.rerank("q", DOCS, sampler="sliding", rounds=1).usage.batches == 1
    assert client.rerank("q", DOCS).usage.comparisons == 30  # auto with no budget: all pairs, both orders


def test_text_over_the_limit_says_the_limit(client) -> None:
    with pytest.raises(RerankError) as err:
        client.rerank("q", [("a", "x 1"), ("b", "y" * 101)])
    assert "101 characters" in err.value.details and "100" in err.value.details


def test_over_the_candidate_limit_is_resource_exhausted(client) -> None:
    docs = [(f"d{i}", f"p {i}") for i in range(51)]
    with pytest.raises(RerankError) as err:
        client.rerank("q", docs)
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit of 50" in err.value.details and err.value.field == "candidates"
    assert len(client.rerank("q", docs[:50]).results) == 50  # at the limit: fine


@pytest.mark.parametrize(
    ("items", "model", "field"),
    [
        ([], "", "items"),
        ([("q", "", "b 1")], "", "items[0].a"),
        ([("q", "a 1", "b 2"), ("", "a", "b")], "", "items[1].query"),
        ([("q", "a 1", "b" * 101)], "", "items[0].b"),
        ([("q", "a 1", "b 2")], "nope", "model"),
    ],
)
def test_compare_errors(client, items, model, field) -> None:
    with pytest.raises(RerankError) as err:
        client.compare(items, model=model)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.field == field


def test_compare_matches_the_fake(client) -> None:
    p = client.compare([("q", "a 2", "b 0"), ("q", "a 0", "b 0")])
    assert p[0] == pytest.approx(1 / (1 + pytest.importorskip("numpy").exp(-2.0))) and p[1] == pytest.approx(
        0.5
    )


def test_full_queue_is_resource_exhausted_and_the_server_survives(wait_for) -> None:
    gate = threading.Event()
    model = FakeModel(gate=gate)
    config = ServerConfig(port=0, max_queue_items=100, max_wait_ms=0.0)
    with RerankServer(config, models={"fake": model}) as srv, RerankClient(srv.address, timeout=30) as c:
        docs = [(f"d{i}", f"p {i}") for i in range(10)]  # all pairs: 90 comparisons
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(c.rerank, "q", docs)  # taken by the worker, held at the gate
            assert model.started.wait(10)
            second = pool.submit(c.rerank, "q", docs)  # queued: 90 of 100
            wait_for(lambda: srv.schedulers["fake"].queue_depth == 90)
            with pytest.raises(RerankError) as err:
                c.rerank("q", docs)  # 90 + 90 > 100
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "limit of 100" in err.value.details
            gate.set()
            assert first.result(30).ids[0] == "d9" and second.result(30).ids[0] == "d9"
        assert c.rerank("q", docs).ids[0] == "d9"  # still serving


def test_too_many_concurrent_rpcs_is_resource_exhausted(wait_for) -> None:
    gate = threading.Event()
    config = ServerConfig(port=0, max_concurrent_rpcs=2, max_wait_ms=0.0)
    # no client-side health checking: its Watch stream would be a third concurrent RPC
    with (
        RerankServer(config, models={"fake": FakeModel(gate=gate)}) as srv,
        RerankClient(srv.address, timeout=120, retry=RetryPolicy(attempts=1), health_service=None) as c,
        ThreadPoolExecutor(3) as pool,
    ):
        try:
            busy = [pool.submit(c.rerank, "q", DOCS) for _ in range(2)]
            wait_for(lambda: srv.metrics.inflight._value.get() == 2 or any(f.done() for f in busy), timeout=120)
            assert not any(f.done() for f in busy), [f.exception() for f in busy if f.done()]
            with pytest.raises(RerankError) as err:
                c.rerank("q", DOCS)
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            gate.set()  # never leave the two calls (and the server's stop) waiting on the gate
        assert all(f.result(60).ids[0] == "d5" for f in busy)


def test_a_failing_request_does_not_fail_the_requests_merged_with_it(wait_for, caplog) -> None:
    gate = threading.Event()
    model = FakeModel(fail_marker="BOOM", gate=gate)
    config = ServerConfig(port=0, max_wait_ms=0.0)
    with (
        RerankServer(config, models={"fake": model}) as srv,
        RerankClient(srv.address, timeout=30) as c,
        ThreadPoolExecutor(4) as pool,
        caplog.at_level("INFO", logger="rerank.server"),
    ):
        first = pool.submit(c.rerank, "q", DOCS)  # runs alone, held at the gate
        assert model.started.wait(10)
        good = [pool.submit(c.rerank, "q", DOCS) for _ in range(2)]
        bad = pool.submit(c.rerank, "q", [("x", "BOOM 1"), ("y", "ok 2")])
        wait_for(lambda: srv.schedulers["fake"].queue_depth == 30 + 30 + 2)  # all three queued: one batch
        gate.set()
        assert all(f.result(30).ids[0] == "d5" for f in [first, *good])
        with pytest.raises(RerankError) as err:
            bad.result(30)
        assert err.value.code == grpc.StatusCode.INTERNAL
    assert any("merged batch of 62 items failed" in r.getMessage() for r in caplog.records)
    assert model.batch_sizes == [30, 30, 30]  # the good requests' slices, rerun alone after the merged failure


# --- refused before the servicer: malformed bodies, requests that can never fit ----------------------------
@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff\xff",  # not protobuf
        b"\x0a\x02\xff\xfe",  # field 1 (query), a string that is not UTF-8
    ],
    ids=["broken-protobuf", "invalid-utf8"],
)
def test_malformed_request_is_invalid_argument_with_one_log_line(server, body, sample, caplog) -> None:
    before = sample(server.metrics.registry, "rerank_requests_total", method="Rerank", code="INVALID_ARGUMENT")
    with grpc.insecure_channel(server.address) as channel, caplog.at_level("INFO"):
        raw = channel.unary_unary("/rerank.v1.Reranker/Rerank")  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as err:
            raw(body, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in err.value.details()
    after = sample(server.metrics.registry, "rerank_requests_total", method="Rerank", code="INVALID_ARGUMENT")
    assert after == before + 1
    lines = [r for r in caplog.records if r.levelname in ("WARNING", "ERROR", "CRITICAL")]
    assert len(lines) == 1 and "malformed request to /rerank.v1.Reranker/Rerank" in lines[0].getMessage()
    assert lines[0].exc_info is None  # no traceback


def test_a_request_larger_than_the_queue_is_told_retrying_will_not_help() -> None:
    config = ServerConfig(port=0, max_queue_items=10, max_wait_ms=0.0)
    with (
        RerankServer(config, models={"fake": FakeModel()}) as srv,
        RerankClient(srv.address, timeout=30) as c,
    ):
        with pytest.raises(RerankError) as err:
            c.rerank("q", DOCS, sampler="all")  # one round of 30 comparisons > 10
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit of 10" in err.value.details and "retrying will not help" in err.value.details
        assert "retry later" not in err.value.details


def test_usage_budget_is_the_budget_used_not_the_one_asked(client) -> None:
    reply = client.rerank("q", DOCS, budget=4294967295)  # the most a uint32 holds
    assert reply.usage.budget == 30  # all ordered pairs of 6 candidates: nothing more can be used
    assert reply.usage.comparisons <= reply.usage.budget
    assert client.rerank("q", DOCS, budget=12).usage.budget == 12


def test_unknown_score_format_is_refused(client) -> None:
    request = build_rerank_request("q", DOCS)
    request.score_format = 7  # proto3 enums are open: the number arrives as it is
    with pytest.raises(RerankError) as err:
        client.rerank_request(request)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.field == "score_format"
    assert "unknown value 7" in err.value.details
