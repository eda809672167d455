"""The health servicer must not hold its lock while it sends a status to watchers (a deadlock with gRPC's
poller thread, which needs that lock to close a watcher's stream, hung the server's stop())."""

from __future__ import annotations

import threading

import pytest
from grpc_health.v1 import health, health_pb2

from rerank.server.health import HealthServicer


def _lock_free_during_send(servicer: health.HealthServicer) -> bool:
    """Set a status while a watcher is registered whose send checks, from another thread (as gRPC's poller
    closing a stream does), whether the servicer's lock can be taken."""
    seen: list[bool] = []

    def send(response) -> None:
        if response is None:
            return
        def take_and_release() -> None:
            taken = servicer._lock.acquire(timeout=0.5)
            if taken:
                servicer._lock.release()
            seen.append(taken)

        probe = threading.Thread(target=take_and_release)
        probe.start()
        probe.join()

    servicer._send_response_callbacks.setdefault("svc", set()).add(send)
    servicer.set("svc", health_pb2.HealthCheckResponse.NOT_SERVING)
    return seen == [True]


def test_upstream_servicer_sends_under_its_lock() -> None:
    """The defect this module works around is still there upstream (if this fails, upstream fixed it and
    rerank.server.health can go)."""
    assert not _lock_free_during_send(health.HealthServicer(experimental_non_blocking=True))


def test_ours_sends_after_releasing_it() -> None:
    servicer = HealthServicer()
    assert _lock_free_during_send(servicer)
    assert servicer._server_status["svc"] == health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize("status", [health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING])
def test_watchers_get_every_status_in_order(status) -> None:
    servicer, got = HealthServicer(), []
    servicer._send_response_callbacks.setdefault("svc", set()).add(lambda r: got.append(r.status))
    servicer.set("svc", health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
    servicer.set("svc", status)
    assert got == [health_pb2.HealthCheckResponse.SERVICE_UNKNOWN, status]
