"""Prometheus metrics of one server instance (own registry, so several servers can live in one process)."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from .scheduler import BatchRecord, SchedulerMetrics

log = logging.getLogger("rerank.server")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_SIZE_BUCKETS = tuple(float(2**i) for i in range(0, 21))  # 1 .. ~1M comparisons
_REQUEST_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics(SchedulerMetrics):
    """Requests, latency, batch sizes, comparisons and queue depth; served over HTTP by :meth:`serve`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "rerank_requests", "RPCs handled, by method and status code", ["method", "code"], registry=r
        )
        self.latency = Histogram(
            "rerank_request_seconds",
            "RPC latency in the server, by method",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge("rerank_inflight_requests", "RPCs being handled", registry=r)
        self.candidates = Histogram(
            "rerank_request_candidates",
            "candidates per Rerank request",
            buckets=(1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
            registry=r,
        )
        self.batch_items = Histogram(
            "rerank_batch_items", "comparisons per model call", ["model"], buckets=_SIZE_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "rerank_batch_requests",
            "requests merged into one model call",
            ["model"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "rerank_batch_seconds", "model call time", ["model"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.comparisons = Counter(
            "rerank_comparisons", "comparisons answered by the model", ["model"], registry=r
        )
        self.model_calls = Counter("rerank_model_calls", "merged model calls", ["model"], registry=r)
        self.queue = Gauge("rerank_queue_items", "comparisons queued for the model", ["model"], registry=r)
        self.dropped_items = Counter(
            "rerank_dropped_items",
            "queued comparisons dropped (cancelled, deadline, error)",
            ["model", "reason"],
            registry=r,
        )
        self.partial = Counter(
            "rerank_partial_rankings", "rankings cut short by their time budget", registry=r
        )
        self._http: Any = None

    # --- scheduler hooks ----------------------------------------------------------------------------
    def batch(self, model: str, record: BatchRecord) -> None:
        self.batch_items.labels(model).observe(record.items)
        self.batch_requests.labels(model).observe(record.requests)
        self.batch_seconds.labels(model).observe(record.seconds)
        self.comparisons.labels(model).inc(record.items)
        self.model_calls.labels(model).inc()

    def queue_depth(self, model: str, items: int) -> None:
        self.queue.labels(model).set(items)

    def dropped(self, model: str, items: int, reason: str) -> None:
        self.dropped_items.labels(model, reason).inc(items)

    # --- requests -----------------------------------------------------------------------------------
    def request(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)

    def rejected(self, method: str, code: str) -> None:
        """A call refused before the servicer ran (UNAUTHENTICATED, malformed): counted, no latency."""
        self.requests.labels(method, code).inc()

    # --- exposition ---------------------------------------------------------------------------------
    def serve(self, port: int, host: str = "127.0.0.1", *, token: str | None = None,
              tls: tuple[str, str] | None = None) -> int:  # fmt: skip
        """Start the HTTP endpoint (``/metrics``, prometheus_client's WSGI app on a thread); return the bound
        port (``port=0`` picks a free one). ``token``: requests need ``Authorization: Bearer <token>`` (else
        401); ``tls``: (certificate chain, key) PEM files, served over HTTPS."""
        app = make_wsgi_app(self.registry)
        if token:
            app = _bearer_only(app, token)
        family = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
        server = make_server(host.strip("[]"), port, app, server_class, handler_class=_QuietHandler)
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            # the handshake on the connection's own thread: a client that never sends one holds only its own
            server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=server.serve_forever, name="rerank-metrics", daemon=True).start()
        self._http = server
        bound = int(server.server_address[1])
        log.info("metrics on %s://%s:%d/metrics%s", "https" if tls else "http", host, bound,
                 " (bearer token)" if token else "")  # fmt: skip
        return bound

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def text(self) -> str:
        return generate_latest(self.registry).decode()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback only."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _QuietHandler(WSGIRequestHandler):
    """No access log; a connection that sends nothing for ``timeout`` seconds is dropped."""

    timeout = 10.0

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _bearer_only(app: Callable[..., Iterable[bytes]], token: str) -> Callable[..., Iterable[bytes]]:
    """The WSGI ``app`` behind ``Authorization: Bearer <token>`` (401 otherwise)."""
    expected = f"Bearer {token}".encode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                 ("WWW-Authenticate", "Bearer")])  # fmt: skip
            return [b"missing or invalid bearer token (authorization)\n"]
        return app(environ, start_response)

    return guarded
