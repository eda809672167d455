"""The HTTP face's transport: what uvicorn lacks against slow or half-open clients, and the counting of every
HTTP answer in ``rerank_requests_total``.

uvicorn reads a request's headers and body for as long as the client takes (its ``timeout_keep_alive`` runs
only between requests) and accepts every connection: 21,000 connections that never finished their headers
exhausted the process's file descriptors, and gRPC with them. :func:`guarded_protocol` subclasses uvicorn's
httptools protocol (passed as ``uvicorn.Config(http=...)``, uvicorn's own extension point) with

- a header read timeout: a connection must complete a request's headers within ``header_timeout_s`` of
  connecting (or of the request's first byte on a kept-alive connection), else it is answered 408 and closed;
- a body read timeout: the body must be complete within ``body_timeout_s`` of the headers, else closed;
- a connection cap: over ``max_connections`` open connections, the oldest idle one (no request running: a
  half-open client, or a kept-alive one) is closed to make room; when every connection runs a request, the
  new one is answered 503 and closed. File descriptors stay bounded, and a flood cycles itself out.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    INTERNAL,
    INVALID_ARGUMENT,
    NO_INDEX,
    OK,
    OVERLOADED,
    TOO_LARGE,
    UNAUTHENTICATED,
    UNAVAILABLE,
)
from .metrics import Metrics

_CLOSE_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_CLOSE_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: 78\r\n\r\n"
    b'{"message": "too many connections (http_max_connections); retry", "field": null}'
)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read timeouts and a connection cap (see the module docstring);
    :func:`guarded_protocol` sets the class attributes."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 1000

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.opened = time.monotonic()
        self._read_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        if len(self.connections) > self.max_connections and not self._evict_idle():
            transport.write(_CLOSE_503)
            transport.close()
            return
        self._arm(self.header_timeout_s, _CLOSE_408)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_timer is None:  # a kept-alive connection's next request: its headers are timed too
            self._arm(self.header_timeout_s, _CLOSE_408)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        self._arm(self.body_timeout_s, b"")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _evict_idle(self) -> bool:
        """Close the oldest idle connection other than this one; False when there is none."""
        idle = [c for c in self.connections if c is not self and isinstance(c, GuardedProtocol) and c._idle()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.opened)
        oldest._disarm()
        oldest.transport.close()
        return True

    def _arm(self, seconds: float, answer: bytes) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._timed_out, answer)

    def _disarm(self) -> None:
        timer = getattr(self, "_read_timer", None)
        if timer is not None:
            timer.cancel()
            self._read_timer = None

    def _timed_out(self, answer: bytes) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if answer and self._idle():
            self.transport.write(answer)
        self.transport.close()  # a request reading its body sees http.disconnect


def guarded_protocol(header_timeout_s: float, body_timeout_s: float, max_connections: int) -> type[GuardedProtocol]:
    """A :class:`GuardedProtocol` subclass with these limits (one per server: several may share a process)."""
    return type(
        "GuardedProtocol",
        (GuardedProtocol,),
        {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s, "max_connections": max_connections},
    )


# --- metrics ---------------------------------------------------------------------------------------
_STATUSES = (OK, INVALID_ARGUMENT, UNAUTHENTICATED, NO_INDEX, TOO_LARGE, OVERLOADED, CANCELLED, INTERNAL,
             UNAVAILABLE, DEADLINE_EXCEEDED)  # fmt: skip
_GRPC_NAME_BY_HTTP = {s.http: s.grpc.name for s in _STATUSES}
_GRPC_NAME_BY_HTTP[404] = "NOT_FOUND"  # an unknown route (NO_INDEX shares 404: FAILED_PRECONDITION)
_GRPC_NAME_BY_HTTP[405] = "UNIMPLEMENTED"
COUNTED_STATE = "rerank_counted"  # set in the request's scope state when the servicer counted the call


class CountingMiddleware:
    """Pure ASGI, outermost: every HTTP answer of an API route that the servicer did not count itself (401,
    413, 400 of body parsing, 404, 503 while stopping...) is counted in ``rerank_requests_total`` under
    ``http <path>`` (``http other`` for an unknown path) with the gRPC code name of its status, as gRPC's
    refusals are."""

    def __init__(self, app: Any, metrics: Metrics, routes: frozenset[str], uncounted: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.uncounted = uncounted  # health, readiness, the schema: not requests of the API

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def observed(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        if scope.get("path") in self.uncounted:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        try:
            await self.app(scope, receive, observed)
        finally:
            if not scope["state"].get(COUNTED_STATE):
                path = scope.get("path", "")
                code = status[0] if status else 500
                label = f"http {path}" if path in self.routes else "http other"
                self.metrics.rejected(label, _GRPC_NAME_BY_HTTP.get(code, f"HTTP_{code}"))
