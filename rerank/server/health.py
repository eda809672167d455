"""The grpc.health.v1 servicer, with watchers told of a status change outside the servicer's lock.

grpcio-health-checking's ``HealthServicer.set`` sends the new status to every ``Watch`` stream while it holds
the servicer's lock, and a send waits for gRPC's poller thread to complete the previous one. When a watching
client goes away meanwhile, that poller thread runs the stream's close callback, which needs the same lock:
neither moves again, and the server's ``stop()`` hung for good (seen in a full test run pinned to one core:
the poller in ``_on_close_callback``, ``stop()`` in ``set``; upstream discussion: grpc/grpc#43403).
"""

from __future__ import annotations

import threading

from grpc_health.v1 import health, health_pb2


class HealthServicer(health.HealthServicer):
    """``grpc_health.v1.health.HealthServicer`` (non-blocking ``Watch``) whose ``set`` updates the status under
    the servicer's lock and sends it to the watchers after releasing it; a second lock keeps concurrent
    ``set`` calls' sends in the order of their updates."""

    def __init__(self) -> None:
        super().__init__(experimental_non_blocking=True)
        self._send_lock = threading.Lock()

    def set(self, service: str, status: int) -> None:
        with self._send_lock:
            with self._lock:
                if self._gracefully_shutting_down:
                    return
                self._server_status[service] = status
                watchers = list(self._send_response_callbacks.get(service, ()))
            for send in watchers:
                send(health_pb2.HealthCheckResponse(status=status))
