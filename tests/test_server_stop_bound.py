"""A stop returns within its grace plus a stated bound even when a model call never ends (the call is left,
``abandoned``), and HTTP requests cut at the grace get a JSON 503 with Retry-After (real servers on
127.0.0.1; a FakeModel held at a gate stands for a model call that outlives the grace)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from conftest import NO_RETRY

from rerank.client import RerankClient, RerankError
from rerank.server.app import ABANDON_S, ANSWER_S, RerankServer
from rerank.server.config import ServerConfig
from rerank.server.testing import FakeModel

DOCS = [(f"d{i}", f"passage {i}") for i in range(6)]
GRACE_S = 0.5


@pytest.fixture
def held():
    """A server on both faces whose model calls wait at a gate (released at the end); linger: the calls run
    on the scheduler's worker, not on the request's thread, which stays free to answer."""
    gate = threading.Event()
    model = FakeModel(gate=gate)
    config = ServerConfig(port=0, http_port=0, max_wait_ms=0.0, linger_ms=1.0, warmup=False)
    srv = RerankServer(config, models={"fake": model})
    srv.start()
    yield srv, model
    gate.set()
    srv.stop(grace=0)


def _timed_stop(srv: RerankServer) -> tuple[threading.Thread, list[float]]:
    took: list[float] = []

    def stop() -> None:
        t0 = time.monotonic()
        srv.stop(grace=GRACE_S)
        took.append(time.monotonic() - t0)

    stopper = threading.Thread(target=stop)
    stopper.start()
    return stopper, took


def test_stop_returns_within_the_bound_and_leaves_a_model_call_that_never_ends(held) -> None:
    srv, model = held
    with RerankClient(srv.address, timeout=30, retry=NO_RETRY, health_service=None) as client, \
            ThreadPoolExecutor(1) as pool:  # fmt: skip
        future = pool.submit(client.rerank, "q", DOCS)
        assert model.started.wait(10)
        stopper, took = _timed_stop(srv)
        with pytest.raises(RerankError) as err:
            future.result(30)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE and "grace" in err.value.details
        stopper.join(GRACE_S + ANSWER_S + ABANDON_S + 5)
        assert not stopper.is_alive(), "stop() waited for a model call that never ends"
    assert took[0] <= GRACE_S + ANSWER_S + ABANDON_S + 1.0, took
    assert srv.abandoned


def test_http_request_cut_at_the_grace_gets_json_503_with_retry_after(held) -> None:
    srv, model = held
    with httpx.Client(base_url=f"http://127.0.0.1:{srv.http_port}", timeout=30) as http, \
            ThreadPoolExecutor(1) as pool:  # fmt: skip
        future = pool.submit(http.post, "/v1/rerank", json={"query": "q", "documents": ["a 1", "b 2"]})
        assert model.started.wait(10)
        stopper, _ = _timed_stop(srv)
        reply = future.result(30)
        stopper.join(30)
    assert reply.status_code == 503, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["retry-after"] == "1"
    assert "grace" in reply.json()["message"] and "Traceback" not in reply.text
