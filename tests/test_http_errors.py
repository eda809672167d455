"""The HTTP face's errors, limits and security, against real servers on 127.0.0.1 (fake models): every error
class the gRPC tests cover answers ``{"message", "field"}`` with the status of the one table both faces use
(400/401/404/413/429/500/503/504), with HTTP field names; the bearer token, TLS, the body-size limit,
``X-Request-Timeout``, cancellation by disconnect, and the drain on shutdown."""

from __future__ import annotations

import json
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from conftest import _wait_for
from test_server_tls_auth import _self_signed

from rerank.client import RerankClient, RetryPolicy
from rerank.models.errors import EmptyTextError, ModelError, TextTooLongError
from rerank.pipeline import RequestError
from rerank.retrieval.errors import IndexClosedError, RetrievalError
from rerank.server import errors
from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig
from rerank.server.scheduler import (
    DeadlineExpiredError,
    QueueFullError,
    RequestCancelledError,
    SchedulerStoppedError,
)
from rerank.server.testing import FakeModel, SlowFakeModel

TEXTS = [f"passage {i}" for i in range(6)]
TOKEN = "http-s3cret"


@pytest.fixture(scope="module")
def server():
    config = ServerConfig(port=0, http_port=0, max_candidates=50, max_wait_ms=1.0, warmup=False)
    srv = RerankServer(config, models={"fake": FakeModel(max_chars=100), "fake-b": FakeModel()})
    srv.start()
    yield srv
    srv.stop(grace=0)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30) as c:
        yield c


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "field", "detail"} and body["detail"] == body["message"]
    return body


# --- the one table ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "code", "http_status"),
    [
        (RequestError("query", "must not be empty"), grpc.StatusCode.INVALID_ARGUMENT, 400),
        (EmptyTextError("empty"), grpc.StatusCode.INVALID_ARGUMENT, 400),
        (TextTooLongError("long"), grpc.StatusCode.INVALID_ARGUMENT, 400),
        (QueueFullError("fake", 90, 100), grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (DeadlineExpiredError("late"), grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (RequestCancelledError("gone"), grpc.StatusCode.CANCELLED, 499),
        (SchedulerStoppedError("stopped"), grpc.StatusCode.UNAVAILABLE, 503),
        (IndexClosedError("closed"), grpc.StatusCode.UNAVAILABLE, 503),
        (RetrievalError("broken"), grpc.StatusCode.INTERNAL, 500),
        (ModelError("broken"), grpc.StatusCode.INTERNAL, 500),
        (ValueError("anything else"), grpc.StatusCode.INTERNAL, 500),
        (errors.ServiceError(errors.TOO_LARGE, "big", "candidates"), grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
        (errors.ServiceError(errors.NO_INDEX, "no index"), grpc.StatusCode.FAILED_PRECONDITION, 404),
    ],
)
def test_one_table_gives_both_faces_their_status(exc, code, http_status) -> None:
    status, message, field = errors.status_of(exc)
    assert (status.grpc, status.http) == (code, http_status)
    assert message and field == getattr(exc, "field", None)


# --- 400: bad input names the field -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "nope"}, "model"),
        ({"models": ["nope"]}, "models[0]"),
        ({"models": ["fake", "fake"]}, "models[1]"),
        ({"model": "fake", "models": ["fake"]}, "models"),
        ({"sampler": "nope"}, "sampler"),
        ({"aggregator": "nope"}, "aggregator"),
        ({"calibration": "nope"}, "calibration"),
        ({"models": ["fake", "fake-b"], "fusion": "nope"}, "fusion"),
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "q" * 101}, "query"),
        ({"documents": []}, "documents"),
        ({"documents": ["x 1", " "]}, "documents[1]"),
        ({"documents": ["x 1", "y" * 101]}, "documents[1]"),
        ({"documents": ["x 1", {"title": "no text"}]}, "documents[1]"),
        ({"documents": [{"a": "x"}], "rank_fields": ["b"]}, "documents[0]"),
        ({"fraction": 1.5}, "fraction"),
        ({"comparisons": 0}, "comparisons"),
        ({"comparisons": 3, "fraction": 0.5}, "fraction"),
        ({"comparisons": -1}, "comparisons"),
        ({"top_n": 0}, "top_n"),
        ({"top_n": "three"}, "top_n"),
        ({"query": None}, "query"),
    ],
)
def test_bad_input_is_400_naming_the_field(http, body, field) -> None:
    request = {"model": "fake", "query": "q", "documents": TEXTS, **body}
    request = {k: v for k, v in request.items() if not (k == "model" and "models" in body and "model" not in body)}
    for path in ("/v1/rerank", "/v2/rerank"):
        error = _error(http.post(path, json=request), 400)
        assert error["field"] == field and error["message"].startswith(field)


def test_text_over_the_limit_says_the_limit(http) -> None:
    error = _error(http.post("/v2/rerank", json={"query": "q", "documents": ["x 1", "y" * 101]}), 400)
    assert "101 characters" in error["message"] and "100" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"texts": []}, "texts"), ({"texts": ["a 1", ""]}, "texts[1]"), ({"query": ""}, "query"),
     ({"sampler": "nope"}, "sampler"), ({"raw_scores": "maybe"}, "raw_scores")],
)  # fmt: skip
def test_tei_errors_name_tei_fields(http, body, field) -> None:
    error = _error(http.post("/rerank", json={"query": "q", "texts": TEXTS, **body}), 400)
    assert error["field"] == field


def test_max_tokens_per_doc_below_the_models_budget_is_refused() -> None:
    model = FakeModel()
    model.max_passage_tokens = 128
    with RerankServer(ServerConfig(port=0, http_port=0, warmup=False), models={"fake": model}) as srv:
        base = f"http://127.0.0.1:{srv.http_port}"
        body = {"query": "q", "documents": TEXTS, "max_tokens_per_doc": 64}
        error = _error(httpx.post(f"{base}/v2/rerank", json=body, timeout=30), 400)
        assert error["field"] == "max_tokens_per_doc" and "128" in error["message"]
        ok = httpx.post(f"{base}/v2/rerank", json={**body, "max_tokens_per_doc": 4096}, timeout=30).json()
        assert ok["meta"]["warnings"] == ["model 'fake' reads at most 128 tokens of each document"]


def test_malformed_json_unknown_route_and_no_index(http) -> None:
    bad = http.post("/v2/rerank", content=b"{not json", headers={"content-type": "application/json"})
    assert "JSON" in _error(bad, 400)["message"]
    assert _error(http.get("/v3/nothing"), 404)["field"] is None
    no_index = _error(http.post("/v1/retrieve_and_rerank", json={"query": "q"}), 404)
    assert "--index" in no_index["message"]


# --- 413: size limits ---------------------------------------------------------------------------------
def test_over_the_candidate_limit_is_413(http) -> None:
    docs = [f"p {i}" for i in range(51)]
    error = _error(http.post("/v2/rerank", json={"query": "q", "documents": docs}), 413)
    assert error["field"] == "documents" and "limit of 50" in error["message"]
    assert len(http.post("/v2/rerank", json={"query": "q", "documents": docs[:50]}).json()["results"]) == 50
    assert _error(http.post("/rerank", json={"query": "q", "texts": docs}), 413)["field"] == "texts"


def test_body_over_the_size_limit_is_413_with_or_without_content_length() -> None:
    config = ServerConfig(port=0, http_port=0, max_message_mb=1, warmup=False)
    with RerankServer(config, models={"fake": FakeModel(max_chars=3_000_000)}) as srv:
        url = f"http://127.0.0.1:{srv.http_port}/v2/rerank"
        big = b'{"query": "q", "documents": ["' + b"x" * (1024 * 1024 + 10) + b'"]}'
        headers = {"content-type": "application/json"}
        assert "max_message_mb" in _error(httpx.post(url, content=big, headers=headers, timeout=30), 413)["message"]

        def chunks():
            for i in range(0, len(big), 65536):
                yield big[i : i + 65536]

        assert _error(httpx.post(url, content=chunks(), headers=headers, timeout=30), 413)["field"] is None
        small = httpx.post(url, json={"query": "q", "documents": ["a 1", "b 2"]}, timeout=30)
        assert small.status_code == 200


# --- 429: load ----------------------------------------------------------------------------------------
def test_full_queue_is_429_and_the_server_survives() -> None:
    gate = threading.Event()
    model = FakeModel(gate=gate)
    config = ServerConfig(port=0, http_port=0, max_queue_items=100, max_wait_ms=0.0, warmup=False)
    with RerankServer(config, models={"fake": model}) as srv, ThreadPoolExecutor(4) as pool:
        url = f"http://127.0.0.1:{srv.http_port}/v2/rerank"
        body = {"query": "q", "documents": [f"p {i}" for i in range(10)]}  # all pairs: 90 comparisons
        first = pool.submit(httpx.post, url, json=body, timeout=30)
        assert model.started.wait(10)
        second = pool.submit(httpx.post, url, json=body, timeout=30)
        _wait_for(lambda: srv.schedulers["fake"].queue_depth == 90)
        assert "limit of 100" in _error(httpx.post(url, json=body, timeout=30), 429)["message"]
        gate.set()
        assert first.result(30).json()["results"][0]["index"] == 9 == second.result(30).json()["results"][0]["index"]
        assert httpx.post(url, json=body, timeout=30).status_code == 200


def test_too_many_requests_at_once_is_429() -> None:
    gate = threading.Event()
    config = ServerConfig(port=0, http_port=0, max_concurrent_rpcs=2, max_wait_ms=0.0, warmup=False)
    with RerankServer(config, models={"fake": FakeModel(gate=gate)}) as srv, ThreadPoolExecutor(3) as pool:
        url = f"http://127.0.0.1:{srv.http_port}/rerank"
        body = {"query": "q", "texts": TEXTS}
        busy = [pool.submit(httpx.post, url, json=body, timeout=30) for _ in range(2)]
        _wait_for(lambda: srv.metrics.inflight._value.get() == 2)
        assert "max_concurrent_rpcs" in _error(httpx.post(url, json=body, timeout=30), 429)["message"]
        gate.set()
        assert all(f.result(30).status_code == 200 for f in busy)


# --- 500: a model failure fails only its own request --------------------------------------------------
def test_a_failing_request_is_500_and_does_not_fail_the_requests_merged_with_it() -> None:
    model = FakeModel(fail_marker="BOOM", delay_s=0.05)
    config = ServerConfig(port=0, http_port=0, max_wait_ms=200.0, warmup=False)
    with RerankServer(config, models={"fake": model}) as srv, ThreadPoolExecutor(4) as pool:
        url = f"http://127.0.0.1:{srv.http_port}/v2/rerank"
        good = [pool.submit(httpx.post, url, json={"query": "q", "documents": TEXTS}, timeout=30) for _ in range(3)]
        bad = pool.submit(httpx.post, url, json={"query": "q", "documents": ["BOOM 1", "ok 2"]}, timeout=30)
        assert all(f.result(30).json()["results"][0]["index"] == 5 for f in good)
        assert "internal error" in _error(bad.result(30), 500)["message"]


# --- 504 and anytime: the X-Request-Timeout deadline --------------------------------------------------
def test_request_timeout_header_is_a_deadline() -> None:
    model = SlowFakeModel(delay_s=0.6)
    config = ServerConfig(port=0, http_port=0, max_wait_ms=0.0, warmup=False)
    with RerankServer(config, models={"slow": model}) as srv:
        url = f"http://127.0.0.1:{srv.http_port}/v2/rerank"
        body = {"query": "q", "documents": [f"p {i}" for i in range(10)], "sampler": "sliding"}
        t0 = time.perf_counter()
        late = httpx.post(url, json=body, headers={"X-Request-Timeout": "0.3"}, timeout=30)
        assert "deadline" in _error(late, 504)["message"] and time.perf_counter() - t0 < 1.5
        time.sleep(1.5)
        assert model.calls <= 1  # no later round started
        partial = httpx.post(
            url, json={**body, "time_budget_ms": 700}, headers={"X-Request-Timeout": "20"}, timeout=30
        ).json()  # anytime: a time budget gives the ranking so far instead of an error
        assert partial["meta"]["usage"]["partial"] and len(partial["results"]) == 10
        for bad in ("0", "-1", "soon", "nan", "inf"):
            error = _error(httpx.post(url, json=body, headers={"X-Request-Timeout": bad}, timeout=30), 400)
            assert error["field"] == "X-Request-Timeout"


# --- 499: a client that goes away stops consuming the model --------------------------------------------
def test_a_disconnected_client_is_dropped_from_the_queue() -> None:
    gate = threading.Event()
    model = FakeModel(gate=gate)
    config = ServerConfig(port=0, http_port=0, max_wait_ms=0.0, warmup=False)
    with RerankServer(config, models={"fake": model}) as srv, RerankClient(srv.address, timeout=30) as c:
        with ThreadPoolExecutor(1) as pool:
            blocker = pool.submit(c.rerank, "q", [(f"d{i}", t) for i, t in enumerate(TEXTS)])
            assert model.started.wait(10)
            url = f"http://127.0.0.1:{srv.http_port}/v2/rerank"
            with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
                httpx.post(url, json={"query": "q", "documents": [f"x {i}" for i in range(8)]}, timeout=0.5)
            _wait_for(lambda: srv.schedulers["fake"].queue_depth == 0)
            gate.set()
            assert blocker.result(10).ids[0] == "d5"
        assert model.items == 30  # only the blocker's comparisons ran
        registry = srv.metrics.registry
        _wait_for(
            lambda: (
                registry.get_sample_value("rerank_dropped_items_total", {"model": "fake", "reason": "cancelled"}) == 56
            )
        )


# --- 401 and TLS --------------------------------------------------------------------------------------
def test_bearer_token_and_tls(tmp_path) -> None:
    cert, key = _self_signed(tmp_path)
    config = ServerConfig(
        port=0, http_port=0, tls_cert=str(cert), tls_key=str(key), auth_token=TOKEN, max_wait_ms=0.0, warmup=False
    )
    with RerankServer(config, models={"fake": FakeModel()}) as srv:
        base = f"https://localhost:{srv.http_port}"
        with httpx.Client(base_url=base, verify=ssl.create_default_context(cafile=str(cert)), timeout=30) as c:
            good = {"Authorization": f"Bearer {TOKEN}"}
            reply = c.post("/v2/rerank", json={"query": "q", "documents": TEXTS}, headers=good)
            assert [r["index"] for r in reply.json()["results"]] == [5, 4, 3, 2, 1, 0]
            for scheme in (f"bearer {TOKEN}", f"BEARER  {TOKEN}", TOKEN):  # any case; the bare token (LlamaIndex)
                ok = c.post("/v2/rerank", json={"query": "q", "documents": TEXTS}, headers={"Authorization": scheme})
                assert ok.status_code == 200, (scheme, ok.text)
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "wrong"},
                            {"Authorization": f"Basic {TOKEN}"}):
                for method, path in (("POST", "/v2/rerank"), ("POST", "/rerank"), ("GET", "/v1/models")):
                    r = c.request(method, path, json={"query": "q", "texts": TEXTS}, headers=headers)
                    assert "bearer token" in _error(r, 401)["message"]
                    assert r.headers["www-authenticate"] == "Bearer"
                assert c.get("/health", headers=headers).status_code == 200  # open, as gRPC health is
                assert c.get("/ready", headers=headers).status_code == 200
            assert c.get("/v1/models", headers=good).json()["models"][0]["name"] == "fake"
        with pytest.raises(httpx.TransportError):  # plaintext to the TLS port
            httpx.get(f"http://127.0.0.1:{srv.http_port}/health", timeout=5)


# --- 503: shutdown ------------------------------------------------------------------------------------
def test_stop_drains_ready_first_then_finishes_in_flight_requests() -> None:
    model = SlowFakeModel(delay_s=0.4)
    config = ServerConfig(port=0, http_port=0, max_wait_ms=0.0, drain_s=2.0, grace_s=10.0, warmup=False)
    srv = RerankServer(config, models={"slow": model})
    srv.start()
    base = f"http://127.0.0.1:{srv.http_port}"
    try:
        with ThreadPoolExecutor(6) as pool:
            body = {"query": "q", "documents": TEXTS, "sampler": "sliding"}  # several slow rounds each
            futures = [pool.submit(httpx.post, f"{base}/v2/rerank", json=body, timeout=60) for _ in range(4)]
            assert model.started.wait(10)
            assert httpx.get(f"{base}/ready", timeout=5).status_code == 200
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            statuses = set()
            end = time.monotonic() + 5
            while time.monotonic() < end and 503 not in statuses:
                statuses.add(httpx.get(f"{base}/ready", timeout=5).status_code)  # during the drain
            assert 503 in statuses
            assert httpx.get(f"{base}/health", timeout=5).status_code == 200  # alive while draining
            stopper.join(30)
            assert not stopper.is_alive()
            replies = [f.result(30) for f in futures]  # none lost
        assert all([r["index"] for r in x.json()["results"]] == [5, 4, 3, 2, 1, 0] for x in replies)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/health", timeout=2)
    finally:
        srv.stop(grace=0)


def test_a_busy_http_port_is_one_clear_error_and_nothing_keeps_serving() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = ServerConfig(port=0, http_port=busy.getsockname()[1], warmup=False)
        srv = RerankServer(config, models={"fake": FakeModel()})
        try:
            with pytest.raises(OSError, match=r"cannot listen on 127\.0\.0\.1:\d+ \(HTTP\)"):
                srv.start()
            with RerankClient(srv.address, timeout=3, retry=RetryPolicy(attempts=1)) as c:
                with pytest.raises(grpc.RpcError) as err:  # the gRPC face was stopped again
                    c.health()
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            srv.stop(grace=0)


# --- issue 21 item 8: strict bodies, each refusal names its place ----------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [({"query": "\ud800 q"}, "query"), ({"documents": ["x 1", "bad \udfff"]}, "documents[1]"),
     ({"model": "\ud800"}, "model"), ({"rank_fields": ["\ud800"]}, "rank_fields[0]"),
     ({"documents": [{"text": "x", "title": "\ud800"}]}, "documents[0].title")],
)  # fmt: skip
def test_a_lone_surrogate_anywhere_is_400_naming_the_field(http, body, field) -> None:
    raw = json.dumps({"query": "q", "documents": TEXTS, **body})  # ensure_ascii: "\ud800" as JSON escapes
    error = _error(http.post("/v2/rerank", content=raw, headers={"content-type": "application/json"}), 400)
    assert error["field"] == field and "lone surrogate" in error["message"]


@pytest.mark.parametrize(("value", "field"), [(True, "top_n"), ("2", "top_n"), (1.5, "top_n")])
def test_types_are_strict(http, value, field) -> None:
    error = _error(http.post("/v2/rerank", json={"query": "q", "documents": TEXTS, "top_n": value}), 400)
    assert error["field"] == field
    tei = _error(http.post("/rerank", json={"query": "q", "texts": TEXTS, "raw_scores": 1}), 400)
    assert tei["field"] == "raw_scores"
    assert http.post("/v2/rerank", json={"query": "q", "documents": TEXTS, "fraction": 1}).status_code == 200


def test_malformed_json_says_line_and_column(http) -> None:
    body = b'{"query": "q",\n "documents": ["a" "b"]}'
    error = _error(http.post("/v2/rerank", content=body, headers={"content-type": "application/json"}), 400)
    assert error["field"] == "body" and "line 2, column 20" in error["message"], error


def test_a_document_of_the_wrong_type_is_named_by_its_index(http) -> None:
    error = _error(http.post("/v2/rerank", json={"query": "q", "documents": [1, 2]}), 400)
    assert error["field"] == "documents[0]"


def test_json_sent_as_text_plain_is_told_to_send_application_json(http) -> None:
    body = json.dumps({"query": "q", "documents": TEXTS})
    error = _error(http.post("/v2/rerank", content=body, headers={"content-type": "text/plain"}), 400)
    assert "application/json" in error["message"] and error["field"] == "content-type"


def test_retrieve_and_rerank_with_too_large_k_says_the_limit_of_k(server, http) -> None:
    index, server.service.index = server.service.index, object()  # a stand-in: k is checked before any search
    try:
        error = _error(http.post("/v1/retrieve_and_rerank", json={"query": "q", "k": 5000}), 413)
    finally:
        server.service.index = index
    assert error["field"] == "k" and "the limit of k, 50 (max_candidates)" in error["message"]


# --- issue 23 item 6: models.get and Cohere's search units ----------------------------------------------
def test_get_one_model_and_the_cohere_sdk_models_get(server, http) -> None:
    import cohere

    one = http.get("/v1/models/fake-b").json()
    assert one["name"] == "fake-b" and one["endpoints"] == ["rerank"] and one["is_default"] is False
    assert _error(http.get("/v1/models/nope"), 404)["field"] == "name"
    sdk = cohere.Client(base_url=f"http://127.0.0.1:{server.http_port}", api_key="unused", timeout=30)
    assert sdk.models.get("fake").name == "fake"


def test_search_units_count_as_cohere_bills() -> None:
    from rerank.server.http import search_units

    assert [search_units(n) for n in (1, 100, 101, 300)] == [1, 1, 2, 3]
    with RerankServer(ServerConfig(port=0, http_port=0, max_candidates=300, warmup=False),
                      models={"fake": FakeModel()}) as srv:
        body = {"query": "q", "documents": [f"passage {i}" for i in range(300)], "comparisons": 300}
        reply = httpx.post(f"http://127.0.0.1:{srv.http_port}/v2/rerank", json=body, timeout=60).json()
    assert reply["meta"]["billed_units"] == {"search_units": 3}


# --- issue 23 item 2: unknown fields ignored with a warning (Cohere, TEI, Infinity do), or refused ----------
def test_unknown_fields_are_ignored_with_a_warning(http) -> None:
    cohere = http.post("/v2/rerank", json={"query": "q", "documents": TEXTS, "sampeler": "all", "ünï": 1})
    assert cohere.status_code == 200, cohere.text
    warned = ["unknown field 'sampeler' ignored", "unknown field '\\xfcn\\xef' ignored"]  # ASCII: also a header
    assert cohere.json()["meta"]["warnings"] == warned
    tei = http.post("/rerank", json={"query": "q", "texts": TEXTS, "truncate_extra": True})
    assert tei.status_code == 200 and tei.headers["x-rerank-warnings"] == "unknown field 'truncate_extra' ignored"
    typed = _error(http.post("/v2/rerank", json={"query": "q", "documents": TEXTS, "top_n": "2", "x": 1}), 400)
    assert typed["field"] == "top_n"  # leniency covers unknown fields only


def test_a_strict_fields_server_refuses_unknown_fields() -> None:
    config = ServerConfig(port=0, http_port=0, strict_fields=True, warmup=False)
    with RerankServer(config, models={"fake": FakeModel()}) as srv:
        base = f"http://127.0.0.1:{srv.http_port}"
        for path, body in (("/v2/rerank", {"documents": TEXTS}), ("/rerank", {"texts": TEXTS})):
            error = _error(httpx.post(base + path, json={"query": "q", "sampeler": "all", **body}, timeout=30), 400)
            assert error["field"] == "sampeler" and "unknown field" in error["message"]


# --- issue 23 item 4: Infinity's shape of POST /rerank (told apart from TEI's by its fields) ---------------
def test_infinity_shape_of_rerank(http) -> None:
    body = {"query": "q", "documents": TEXTS, "return_documents": True, "top_n": 2, "model": "fake"}
    reply = http.post("/rerank", json=body)
    assert reply.status_code == 200, reply.text
    out = reply.json()
    assert out["object"] == "rerank" and out["model"] == "fake" and out["id"] and out["created"] > 0
    assert [(r["index"], r["document"]) for r in out["results"]] == [(5, TEXTS[5]), (4, TEXTS[4])]
    assert set(out["usage"]) == {"prompt_tokens", "total_tokens"}
    raw = http.post("/rerank", json={"query": "q", "documents": TEXTS, "raw_scores": True}).json()
    assert all("document" not in r for r in raw["results"]) and raw["results"][0]["index"] == 5
    assert _error(http.post("/rerank", json={"query": "q", "documents": ["a 1", ""]}), 400)["field"] == "documents[1]"
    tei = http.post("/rerank", json={"query": "q", "texts": TEXTS}).json()  # TEI's shape is unchanged
    assert isinstance(tei, list) and tei[0]["index"] == 5
