"""Prometheus metrics of one server instance (own registry, so several servers can live in one process)."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

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
    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Start the HTTP endpoint (``/metrics``); return the bound port (``port=0`` picks a free one)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        bound = int(server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def text(self) -> str:
        return generate_latest(self.registry).decode()
