"""The health servicer sends no status while holding a lock that gRPC's threads need (a deadlock with gRPC's
poller thread, which needs that lock to close a watcher's stream, hung the server's stop()); a status
change never waits for a client; ``end`` ends every Watch stream. Over a real gRPC server on 127.0.0.1."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rerank.server.health import NOT_SERVING, SERVING, HealthServicer


class _Context:
    """What Watch asks of its context; ``add_callback`` keeps the close callback for the test to run."""

    def __init__(self) -> None:
        self.callbacks: list = []

    def add_callback(self, callback) -> bool:
        self.callbacks.append(callback)
        return True


def test_watch_sends_its_first_answer_with_no_servicer_lock_held() -> None:
    """The close callback (gRPC's poller) runs while the first answer is being sent: it must not wait."""
    servicer, context = HealthServicer(), _Context()
    closed: list[bool] = []

    def send(response) -> None:
        if response is None:
            return
        closer = threading.Thread(target=lambda: (context.callbacks[0](), closed.append(True)))
        closer.start()
        closer.join(2)  # gRPC's send waits for the poller: the poller must get through
        assert not closer.is_alive(), "the close callback waited for the sending thread's lock"

    servicer.Watch(health_pb2.HealthCheckRequest(service=""), context, send)
    assert closed == [True] and servicer.watchers == 0


def test_set_never_waits_for_a_watcher_and_sends_in_order() -> None:
    servicer, context = HealthServicer(), _Context()
    release, got = threading.Event(), []

    def send(response) -> None:
        got.append(None if response is None else response.status)
        if len(got) == 2:
            release.wait(10)  # a client that does not read: its sends block

    servicer.Watch(health_pb2.HealthCheckRequest(service=""), context, send)
    servicer.set("", NOT_SERVING)  # held in send by the watcher ...
    servicer.set("", SERVING)  # ... so set returns at once, and the latest status is kept
    servicer.set("", NOT_SERVING)
    assert servicer.status("") == NOT_SERVING
    servicer.end()
    release.set()
    deadline = threading.Event()
    for _ in range(100):
        if got[-1:] == [None]:
            break
        deadline.wait(0.02)
    assert got == [SERVING, NOT_SERVING, NOT_SERVING, None]  # the first, the blocked one, the latest, the end


@pytest.fixture
def health_server():
    servicer = HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(4), maximum_concurrent_rpcs=2)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield servicer, health_pb2_grpc.HealthStub(channel)
    channel.close()
    server.stop(0)


def test_check_list_and_unknown_service(health_server) -> None:
    servicer, stub = health_server
    servicer.set("rerank.v1.Reranker", NOT_SERVING)
    assert stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING
    assert stub.Check(health_pb2.HealthCheckRequest(service="rerank.v1.Reranker"), timeout=5).status == NOT_SERVING
    with pytest.raises(grpc.RpcError) as err:
        stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in err.value.details()
    listed = stub.List(health_pb2.HealthListRequest(), timeout=5).statuses
    assert {k: v.status for k, v in listed.items()} == {"": SERVING, "rerank.v1.Reranker": NOT_SERVING}
    stream = stub.Watch(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
    assert next(stream).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    stream.cancel()


def test_watch_streams_changes_then_ends_and_holds_no_rpc_slot(health_server) -> None:
    servicer, stub = health_server
    streams = []
    for _ in range(4):  # more open streams than the server's 2 concurrent RPCs
        streams.append(stub.Watch(health_pb2.HealthCheckRequest(), timeout=10))
        assert next(streams[-1]).status == SERVING
    assert stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING  # a slot is free
    servicer.set("", NOT_SERVING)
    assert [next(s).status for s in streams] == [NOT_SERVING] * 4
    servicer.end()
    for s in streams:
        assert list(s) == []  # the stream ends, with OK
        assert s.code() == grpc.StatusCode.OK
    assert servicer.watchers == 0
    late = stub.Watch(health_pb2.HealthCheckRequest(), timeout=5)
    assert [r.status for r in late] == [NOT_SERVING]  # after end: the status, then the end
