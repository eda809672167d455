"""Exposure and limits shared by both faces, against real servers on 127.0.0.1 (fake models): /metrics beyond
loopback takes the server's token and TLS; HTTP refusals are counted in ``rerank_requests_total`` as gRPC's
are; one ``max_concurrent_rpcs`` across gRPC and HTTP, whose refusal names the setting."""

from __future__ import annotations

import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
import yaml
from conftest import REPO, _sample, _wait_for
from test_server_tls_auth import _self_signed

from rerank.client import RerankClient, RerankError, RetryPolicy
from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig
from rerank.server.testing import FakeModel

TOKEN = "metrics-s3cret"


def test_metrics_beyond_loopback_take_the_token_and_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = ServerConfig(port=0, metrics_port=0, metrics_host="0.0.0.0", auth_token=TOKEN, tls_cert=str(cert),
                          tls_key=str(key), warmup=False)  # fmt: skip
    with RerankServer(config, models={"fake": FakeModel()}) as srv:
        url = f"https://127.0.0.1:{srv.metrics_port}/metrics"
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=context, timeout=10) as https:
            refused = https.get(url)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert https.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
            ok = https.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200 and "rerank_inflight_requests" in ok.text
        with pytest.raises(httpx.HTTPError):  # no plaintext
            httpx.get(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=5)


def test_metrics_on_loopback_stay_plain_for_the_local_scraper() -> None:
    config = ServerConfig(port=0, metrics_port=0, auth_token=TOKEN, warmup=False)
    with RerankServer(config, models={"fake": FakeModel()}) as srv:
        assert httpx.get(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=10).status_code == 200


def test_deploy_shows_the_scrape_settings_that_carry_token_and_tls() -> None:
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus" / "scrape.yaml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["scheme"] == "https" and job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer" and job["authorization"]["credentials_file"]
    assert job["tls_config"]["ca_file"]
    assert any(rule.get("regex") == "metrics" for rule in job["relabel_configs"])  # the Service's port name


def test_http_refusals_are_counted_like_grpc_ones() -> None:
    config = ServerConfig(port=0, http_port=0, auth_token=TOKEN, max_message_mb=1, warmup=False)
    with RerankServer(config, models={"fake": FakeModel()}) as srv:
        base = f"http://127.0.0.1:{srv.http_port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        body = {"query": "q", "documents": ["a 1", "b 2"]}
        assert httpx.post(f"{base}/v1/rerank", json=body).status_code == 401
        assert httpx.post(f"{base}/v1/rerank", content=b"{not json", headers={**auth, "content-type":
                          "application/json"}).status_code == 400  # fmt: skip
        assert httpx.post(f"{base}/v1/rerank", json={"query": "q"}, headers=auth).status_code == 400
        big = {"query": "q", "documents": ["x" * (2 << 20)]}
        assert httpx.post(f"{base}/v1/rerank", json=big, headers=auth).status_code == 413
        assert httpx.get(f"{base}/nope", headers=auth).status_code == 404
        assert httpx.post(f"{base}/v1/rerank", json=body, headers=auth).status_code == 200
        assert httpx.get(f"{base}/health").status_code == 200  # not an API call: not counted
        reg = srv.metrics.registry

        def count(code: str, method: str = "http /v1/rerank") -> float:
            return _sample(reg, "rerank_requests_total", method=method, code=code)

        assert count("UNAUTHENTICATED") == 1
        assert count("INVALID_ARGUMENT") == 2
        assert count("RESOURCE_EXHAUSTED") == 1
        assert count("OK") == 1
        assert count("NOT_FOUND", "http other") == 1
        assert _sample(reg, "rerank_requests_total", method="http /health", code="OK") == 0


def test_one_concurrency_limit_across_grpc_and_http_named_in_the_refusal() -> None:
    gate = threading.Event()
    config = ServerConfig(port=0, http_port=0, max_concurrent_rpcs=2, max_wait_ms=0.0, warmup=False)
    with (
        RerankServer(config, models={"fake": FakeModel(gate=gate)}) as srv,
        RerankClient(srv.address, timeout=10, retry=RetryPolicy(attempts=1), health_service=None) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        url = f"http://127.0.0.1:{srv.http_port}/v1/rerank"
        body = {"query": "q", "documents": ["a 1", "b 2"]}
        try:
            busy = [pool.submit(client.rerank, "q", [("a", "a 1"), ("b", "b 2")]),
                    pool.submit(httpx.post, url, json=body, timeout=30)]  # fmt: skip
            _wait_for(lambda: srv.service.inflight.count == 2)
            with pytest.raises(RerankError) as err:  # one gRPC + one HTTP call hold the limit of 2
                client.rerank("q", [("a", "a 1"), ("b", "b 2")], timeout=5)
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_concurrent_rpcs" in err.value.details
            refused = httpx.post(url, json=body, timeout=5)
            assert refused.status_code == 429 and "max_concurrent_rpcs" in refused.json()["message"]
            assert refused.headers["retry-after"] == "1"
        finally:
            gate.set()
        assert busy[0].result(30).ids[0] == "b" and busy[1].result(30).status_code == 200
        assert client.health() == "SERVING"  # health is not held back by the limit
