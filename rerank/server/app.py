"""The server process: models and schedulers, an optional document index (RetrieveAndRerank), the gRPC
server (Reranker, Health, reflection), the optional HTTP face over the same servicer (``http_port``), TLS,
token auth, metrics, and graceful shutdown."""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from . import _proto
from .auth import TokenAuthInterceptor, server_credentials
from .config import ConfigError, ServerConfig
from .guard import MalformedRequestGuard
from .health import HealthServicer
from .metrics import Metrics, is_loopback
from .scheduler import BatchScheduler
from .service import RerankerService, ServedModel

SPINNING_ENV = "RERANK_ORT_SPINNING"  # models.runtime reads it when a session is created
log = logging.getLogger("rerank.server")

SERVICE_NAME = "rerank.v1.Reranker"
ANSWER_S = 1.0  # after the grace: time for requests failed by the server to send UNAVAILABLE themselves
# after that: the longest wait for model calls to end. A PairwiseModel call whose requests are all failed
# stops before its next backend call (one sequence on CPU: milliseconds); a call that does not (another
# comparator, one long backend call) is left running, and `rerank serve` exits without waiting for it.
ABANDON_S = 1.0
# gRPC's own cap on concurrent RPCs, above max_concurrent_rpcs (which the servicer applies across both faces,
# naming the setting): room for health checks and reflection when the Reranker calls are at their limit
OTHER_RPCS = 64


def no_export_tools(name: str, store: Any, missing: str | None) -> str:
    """How a serving machine without the export tools gets the embedded model ``name`` (one line)."""
    return (
        f"model {name!r} is not in the model store {store} yet, and exporting it here needs "
        f"{missing or 'the export tools'}, which is not installed. A serving machine gets models by copying an "
        f"exported store: run `rerank models ensure {name}` where the export extra is installed and copy its "
        f"models folder to {store} (or point --store at it); or install the export extra here "
        "(pip install 'rerank[export]')"
    )


def load_models(config: ServerConfig) -> dict[str, Any]:
    """Load ``config.models`` from the model store; an embedded model not exported yet is exported first
    (once; cached on disk)."""
    from ..models import EMBEDDED, ModelStore, ensure_embedded, load_model

    store = ModelStore(config.store)
    loaded: dict[str, Any] = {}
    for name in config.models:
        if name in EMBEDDED and name not in store:
            log.info(
                "model %s is not in the store %s yet: exporting it once (cached on disk)", name, store.root
            )
            try:
                ensure_embedded(name, store=store)
            except ImportError as exc:  # a serving machine without the export tools (torch, transformers)
                raise ConfigError(no_export_tools(name, store.root, exc.name)) from None
        options = dict(config.model_options.get(name, {}))
        backend = options.pop("backend", config.backend)
        if config.cuda_options() is not None:
            if backend not in (None, "onnx"):
                raise ConfigError(
                    f"cuda_device, gpu_mem_limit_mb and arena_strategy (--cuda-device, --gpu-mem-limit-mb, "
                    f"--arena-strategy) are ONNX Runtime CUDA options; model {name} runs on the {backend} backend"
                )
            options.setdefault("cuda_options", config.cuda_options())  # used where the session runs on ORT
        with ort_spinning(config.ort_spinning):
            model = load_model(name, backend, store=store, **options)
            fixed = _batch_independent_variant(store, name, model) if "variant" not in options else None
            if fixed is not None:
                log.info(
                    "serving %s as %s, not %s: dynamic quantization makes a request's answers depend on the "
                    "other requests merged into its batch (set model_options.%s.variant to override)",
                    name, fixed, model.variant, name,
                )  # fmt: skip
                model = load_model(name, backend, store=store, **options, variant=fixed)
        loaded[name] = model
        log.info("loaded %r", model)
    return loaded


@contextmanager
def ort_spinning(on: bool) -> Iterator[None]:
    """Sessions created inside get ONNX Runtime intra-op spinning ``on`` (``ServerConfig.ort_spinning``),
    unless the user set ``RERANK_ORT_SPINNING``, which wins."""
    if os.environ.get(SPINNING_ENV):
        yield
        return
    os.environ[SPINNING_ENV] = "1" if on else "0"
    try:
        yield
    finally:
        os.environ.pop(SPINNING_ENV, None)


def _batch_independent_variant(store: Any, name: str, model: Any) -> str | None:
    """The store's default variant when the one loaded is dynamically quantized and runs several sequences
    per call (its activation scales are computed per call, so merged batches would change a request's
    answers); None when the loaded one is fine or cannot be judged. One sequence per call (the CPU default)
    keeps a dynamically quantized graph batch-independent."""
    if name not in store or getattr(model, "variant", None) is None:
        return None
    if int(getattr(getattr(model, "options", None), "max_batch_size", 1)) <= 1:
        return None
    try:
        manifest = store.manifest(name)
        quantization = manifest.variants[model.variant].quantization or ""
    except Exception:
        return None
    if "dynamic" in quantization and manifest.default_variant != model.variant:
        return manifest.default_variant
    return None


def open_index(path: str, models: Mapping[str, Any], verify: bool = True) -> Any:
    """Open the index folder ``path`` for RetrieveAndRerank, embedding queries with the served model the
    index was built with. Raises ``RetrievalError`` (``IndexModelMismatchError`` when this server does not
    serve that model, or serves other weights under its name; ``CorruptIndexError`` when ``verify`` finds
    a file that does not match its checksum). The index is opened once: documents added later
    (``rerank index add``) are searched after a restart."""
    from ..retrieval import Index, IndexManifest, IndexModelMismatchError

    manifest = IndexManifest.read(path)
    name = manifest.model.name
    if name not in models:
        raise IndexModelMismatchError(
            f"index {path} was embedded with model {name!r}, which this server does not serve "
            f"(serving: {', '.join(models)}); add --model {name} or rebuild the index with a served model"
        )
    index = Index.open(path, model=models[name], verify=verify)
    log.info("index %s: %s %s documents (%d-d, model %s, %s)", path, f"{index.count:,}", index.index_type,
             index.dim, name, index.device)  # fmt: skip
    return index


def why_not_bound(host: str, port: int) -> str:
    """Why ``host:port`` cannot be listened on, in words a user can act on (after gRPC failed to bind)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve {host!r} ({exc.strerror or exc}); give an address of this machine with --host"
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (f"port {port} is taken (another server, e.g. `make serve`, is listening on it); choose "
                    "another with --port N, or --port 0 for a free one")
        return f"{exc.strerror or exc}; check --host and --port"
    return "gRPC could not bind it; check --host and --port"


def warm_up(model: Any) -> float:
    """Run a ``PairwiseModel`` once on its largest batch shape (``max_batch_size`` sequences at the token
    budget), so ONNX Runtime's memory arena reaches its peak before serving (flat RSS under load) and the
    first request pays no first-run cost. Other comparators are left alone. Returns the seconds spent."""
    options, spec = getattr(model, "options", None), getattr(model, "spec", None)
    if options is None or spec is None or not hasattr(model, "compare_batch"):
        return 0.0
    words = 2 * max(int(spec.max_query_tokens), int(spec.max_passage_tokens))
    limit = int(getattr(options, "max_chars", 20_000))

    def text(i: int) -> str:
        return (f"w{i} " + "warm " * words)[:limit]

    n = int(getattr(options, "max_batch_size", 64))
    t0 = time.perf_counter()
    model.compare_batch([(text(-1), text(i), text(i + 1)) for i in range(n)])
    return time.perf_counter() - t0


class RerankServer:
    """One server instance. ``models`` (name -> comparator) replaces loading from the store (tests, fakes);
    its first entry is the default model. ``start()`` returns the bound port (``port=0`` picks one)."""

    def __init__(self, config: ServerConfig | None = None, models: Mapping[str, Any] | None = None) -> None:
        self.config = config or ServerConfig()
        self.metrics = Metrics()
        raw = dict(models) if models is not None else load_models(self.config)
        if not raw:
            raise ValueError("no model to serve")
        self.schedulers: dict[str, BatchScheduler] = {}
        served: dict[str, ServedModel] = {}
        for name, model in raw.items():
            kind = str(getattr(model, "kind", "") or "custom")
            scheduler = BatchScheduler(
                model,
                name,
                max_batch_items=self.config.batch_items_for(kind),
                max_wait_s=self.config.max_wait_ms / 1000.0,
                max_queue_items=self.config.max_queue_items,
                linger_s=self.config.linger_ms / 1000.0,
                metrics=self.metrics,
                overlap=self.config.overlap,
                streams=self.config.streams_for(str(getattr(model, "provider", ""))),
            )
            self.schedulers[name] = scheduler
            served[name] = ServedModel.wrap(name, model, scheduler)
        self.default_model = next(iter(raw))
        self.index = open_index(self.config.index, raw, self.config.verify_index) if self.config.index else None
        try:
            self.pb2, self.pb2_grpc = _proto.load()
            self.service = RerankerService(
                self.pb2, served, self.default_model, self.config, self.metrics, index=self.index
            )
        except BaseException:
            if self.index is not None:
                self.index.close()
            raise
        self.health = HealthServicer()
        self._server: grpc.Server | None = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.http: Any = None  # the HttpFace when config.http_port is set
        self.http_port: int | None = None
        self._serving = False
        self.abandoned = False  # stop() left a model call or a request thread running (see ABANDON_S)

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    def _build(self) -> grpc.Server:
        c = self.config
        # auth first: an unauthenticated call is refused before its body is even looked at
        interceptors: list[grpc.ServerInterceptor] = [MalformedRequestGuard(self._rejected)]
        if c.auth_token:
            interceptors.insert(0, TokenAuthInterceptor(c.auth_token, on_reject=self._rejected))
        limit = c.max_message_mb * 1024 * 1024
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=c.max_workers, thread_name_prefix="rerank-rpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=c.max_concurrent_rpcs + OTHER_RPCS,
        )
        self.pb2_grpc.add_RerankerServicer_to_server(self.service, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        return server

    def _rejected(self, method: str, code: grpc.StatusCode) -> None:
        self.metrics.rejected(method.rsplit("/", 1)[-1], code.name)

    def start(self) -> int:
        """Start schedulers, metrics and the gRPC server; mark SERVING; return the bound port."""
        c = self.config
        if c.warmup:
            for name, scheduler in self.schedulers.items():
                seconds = warm_up(scheduler.model)
                if seconds:
                    log.info("warmed up %s on its largest batch shape in %.1f s", name, seconds)
        for scheduler in self.schedulers.values():
            scheduler.start()
        if c.warmup:
            log.info("warmed up the request path (validation, sampling, aggregation, scores) in %.2f s",
                     self.service.warm_up_path())
        if c.metrics_port is not None:
            self.metrics_port = self._serve_metrics()
        server = self._build()
        target = f"{c.host}:{c.port}"
        try:
            if c.tls_cert and c.tls_key:
                port = server.add_secure_port(target, server_credentials(c.tls_cert, c.tls_key))
            else:
                port = server.add_insecure_port(target)
        except RuntimeError:  # grpcio >= 1.59 raises where older ones returned 0
            port = 0
        if port == 0:
            self.stop(grace=0.0)
            raise OSError(f"cannot listen on {target}: {why_not_bound(c.host, c.port)}")
        server.start()
        self._server = server
        self.port = port
        if c.http_port is not None:
            from .http import HttpFace

            self.http = HttpFace(self.service, ready=lambda: self._serving)
            try:
                self.http_port = self.http.start(c.host, c.http_port)
            except BaseException:
                server.stop(0)
                raise
            log.info("serving HTTP (Cohere/TEI-compatible) on %s:%d", c.host, self.http_port)
        self.set_serving(True)
        log.info(
            "serving %s on %s (TLS %s, token auth %s; models: %s; default %s)",
            SERVICE_NAME,
            self.address,
            "on" if c.tls_cert else "off: plaintext",
            "on" if c.auth_token else "off",
            ", ".join(self.schedulers),
            self.default_model,
        )
        if c.auth_token and not c.tls_cert:
            log.warning(
                "the bearer token travels over plaintext: anyone on the network path to %s can read it; "
                "serve with --tls-cert and --tls-key",
                self.address,
            )
        return port

    def _serve_metrics(self) -> int:
        """/metrics on ``metrics_host:metrics_port``; beyond loopback it takes the server's token and TLS."""
        c = self.config
        if is_loopback(c.metrics_host):
            return self.metrics.serve(c.metrics_port or 0, c.metrics_host)
        tls = (c.tls_cert, c.tls_key) if c.tls_cert and c.tls_key else None
        return self.metrics.serve(c.metrics_port or 0, c.metrics_host, token=c.auth_token, tls=tls)

    def set_serving(self, serving: bool) -> None:
        """Health status of the server ('') and of the Reranker service, and HTTP's /ready."""
        self._serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, optional drain, health Watch streams ended, new calls refused on both
        faces, in-flight ones finish within ``grace`` seconds (``config.grace_s`` by default). When the grace
        runs out, every request still in flight is answered UNAVAILABLE (HTTP: 503 with Retry-After) at once,
        and the model calls of those requests stop before their next backend call (gRPC cancels any call
        left, UNAVAILABLE too, ``ANSWER_S`` later). Returns within ``grace + ANSWER_S + ABANDON_S`` seconds
        (plus the drain): model calls and request threads still running then are left (``abandoned`` is set,
        and ``rerank serve`` exits without waiting for them)."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            grace = self.config.grace_s if grace is None else grace
            if self._server is not None:
                self.set_serving(False)
                if self.config.drain_s > 0:
                    time.sleep(self.config.drain_s)  # let health checkers see NOT_SERVING first
                log.info("stopping: finishing in-flight requests (grace %.1f s)", grace)
                self.health.end()  # open Watch streams would hold the stop until the grace ran out
                done = self._server.stop(grace + ANSWER_S)
                if self.http is not None:
                    self.http.begin_stop(grace + ANSWER_S)
                if not self.service.inflight.wait_idle(grace):
                    reason = f"server shutting down (grace of {grace:g} s ran out)"
                    log.warning("grace of %.1f s ran out with %d requests in flight: answering them UNAVAILABLE",
                                grace, self.service.inflight.count)  # fmt: skip
                    for scheduler in self.schedulers.values():
                        scheduler.stop(timeout=0.0, reason=reason)
                    if self.http is not None:
                        self.http.abandon(reason)
                done.wait(grace + ANSWER_S + 1.0)  # gRPC ends every call by grace + ANSWER_S
                if self.http is not None:
                    self.http.finish(ANSWER_S)
            self._stop_models(time.monotonic() + ABANDON_S)
            if self.index is not None:
                self.index.close()
            self.metrics.close()
            self._stopped.set()
            log.info("stopped")

    def _stop_models(self, until: float) -> None:
        """Stop the schedulers; wait until ``until`` (monotonic) for model calls and request threads to end,
        and leave those still running (``abandoned``, logged)."""
        idle = self.service.inflight.wait_idle(max(0.0, until - time.monotonic()))
        for scheduler in self.schedulers.values():
            scheduler.stop(timeout=max(0.0, until - time.monotonic()))
        running = [n for n, s in self.schedulers.items() if not s.wait_calls(max(0.0, until - time.monotonic()))]
        if running or not idle:
            self.abandoned = True
            log.warning("leaving %d requests and the model calls of %s running: they did not end within %.1f s "
                        "of the grace", self.service.inflight.count, ", ".join(running) or "no model",
                        ANSWER_S + ABANDON_S)  # fmt: skip

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` finished (or ``timeout``); True when stopped."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> RerankServer:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(grace=0.0 if exc[0] is not None else None)
