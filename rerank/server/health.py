"""The grpc.health.v1 service (``Check``, ``List``, ``Watch``), with no send under a lock that gRPC's threads need.

grpcio-health-checking's ``HealthServicer`` sends a status to a ``Watch`` stream while it holds the servicer's
lock (in ``Watch`` for the first answer, in ``set`` for a change), and a send waits for gRPC's poller thread
to complete it. When the watching client goes away meanwhile, that poller thread runs the stream's close
callback, which needs the same lock: neither moves again, and the server's ``stop()`` hung for good (the
poller in ``_on_close_callback``, a ``Watch`` sending its first answer, ``stop()`` in ``set``; reproduced by
clients churning ``Watch`` streams against ``rerank serve`` stopped by SIGTERM:
``tests/test_server_stop_stress.py``; upstream discussion: grpc/grpc#43403).

Here each ``Watch`` stream is a :class:`_Watcher`: a status change is recorded under the servicer's lock
(and the watcher's own, briefly), then sent by one thread at a time with no lock held. The close callback
that gRPC's poller runs only takes those locks briefly and never waits for a send. A status change is sent
on a thread of its own (a slow client never holds up ``set``), and :meth:`HealthServicer.end` ends every
stream after its last status, so that a server's stop need not wait for watchers until its grace runs out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

log = logging.getLogger("rerank.server")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

Send = Callable[[Any], None]  # gRPC's send_response_callback: a response, or None to end the stream (OK)


class _Watcher:
    """One ``Watch`` stream: the latest status not sent yet and whether the stream is to end; sent in order by
    whichever thread :meth:`offer` elects, with no lock held during a send."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._pending: int | None = None
        self._ending = False
        self._closed = False
        self._busy = False  # a thread is in deliver()

    def offer(self, status: int | None = None, *, end: bool = False) -> bool:
        """Record ``status`` (only the latest unsent one matters) and/or the end; True when the caller must
        call :meth:`deliver` (no other thread is delivering)."""
        with self._lock:
            if self._closed:
                return False
            if status is not None:
                self._pending = status
            self._ending = self._ending or end
            if self._busy:
                return False
            self._busy = True
            return True

    def deliver(self) -> None:
        """Send what is pending, in order, until nothing is; no lock is held while sending."""
        while True:
            with self._lock:
                if self._closed or (self._pending is None and not self._ending):
                    self._busy = False
                    return
                status, self._pending = self._pending, None
                if status is None:  # all sent, the end is due
                    self._closed = True
            try:
                self._send(None if status is None else health_pb2.HealthCheckResponse(status=status))
            except Exception:  # the stream broke: nothing more to send on it
                log.debug("health watcher send failed", exc_info=True)
                self.close()
            if status is None:
                return

    def close(self) -> None:
        """The stream is over (the client went away, or the server ended it): send nothing more."""
        with self._lock:
            self._closed = True
            self._pending = None


def _deliver_all(watchers: Iterable[_Watcher]) -> None:
    for watcher in watchers:
        watcher.deliver()


class HealthServicer(health_pb2_grpc.HealthServicer):
    """grpc.health.v1: ``Check`` and ``List`` read the statuses, ``Watch`` streams a service's status and
    each change (non-blocking: a stream holds no RPC thread), ``set`` changes a status, ``end`` ends every
    stream (the server stops). Unknown service: ``Check`` answers NOT_FOUND, ``Watch`` SERVICE_UNKNOWN."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: dict[str, int] = {"": SERVING}
        self._watchers: dict[str, set[_Watcher]] = {}
        self._ended = False

    # --- RPCs ---------------------------------------------------------------------------------------
    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (proto name)
        with self._lock:
            status = self._status.get(request.service)
        if status is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self._lock:
            statuses = dict(self._status)
        return health_pb2.HealthListResponse(
            statuses={name: health_pb2.HealthCheckResponse(status=s) for name, s in statuses.items()}
        )

    def Watch(self, request: Any, context: grpc.ServicerContext, send_response_callback: Send) -> None:  # noqa: N802
        service = request.service
        watcher = _Watcher(send_response_callback)
        with self._lock:
            status = self._status.get(service, SERVICE_UNKNOWN)
            ended = self._ended
            if not ended:
                self._watchers.setdefault(service, set()).add(watcher)
        if not context.add_callback(lambda: self._forget(service, watcher)):
            self._forget(service, watcher)  # the call is already over
            return
        if watcher.offer(status, end=ended):
            watcher.deliver()  # on this RPC thread, outside every lock

    Watch.experimental_non_blocking = True  # type: ignore[attr-defined]  (gRPC passes send_response_callback)
    Watch.experimental_thread_pool = None  # type: ignore[attr-defined]

    # --- the server's side --------------------------------------------------------------------------
    def set(self, service: str, status: int) -> None:
        """Set ``service``'s status; its watchers are sent it on a thread of their own (never waited for)."""
        with self._lock:
            self._status[service] = status
            watchers = list(self._watchers.get(service, ()))
        self._deliver_later([w for w in watchers if w.offer(status)])

    def status(self, service: str = "") -> int | None:
        with self._lock:
            return self._status.get(service)

    def end(self) -> None:
        """End every ``Watch`` stream after its last status (with OK); a later ``Watch`` answers its status
        and ends at once. For a server's stop: open streams would otherwise hold it until its grace ran out."""
        with self._lock:
            self._ended = True
            watchers = [w for ws in self._watchers.values() for w in ws]
            self._watchers.clear()
        self._deliver_later([w for w in watchers if w.offer(end=True)])

    @property
    def watchers(self) -> int:
        with self._lock:
            return sum(len(ws) for ws in self._watchers.values())

    def _forget(self, service: str, watcher: _Watcher) -> None:
        """gRPC's close callback (on its poller thread): brief locks only, no send."""
        watcher.close()
        with self._lock:
            watchers = self._watchers.get(service)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[service]

    @staticmethod
    def _deliver_later(watchers: list[_Watcher]) -> None:
        if watchers:
            threading.Thread(target=_deliver_all, args=(watchers,), name="rerank-health", daemon=True).start()
