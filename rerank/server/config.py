"""Server settings: defaults, a TOML or JSON file (``--config``), command-line overrides."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..models.errors import ModelError
from ..models.runtime import CPU, CudaOptions, physical_cores

# Comparisons merged into one model call when the config does not say: a bi-encoder's cost is its distinct
# texts (all pairs of k candidates cost k + 1 encodings), so its items are cheap and merging many is right;
# pairwise kinds run one sequence per comparison, and the model splits a call into backend batches anyway.
AUTO_MAX_BATCH_ITEMS = {"bi-encoder": 1 << 20}
DEFAULT_MAX_BATCH_ITEMS = 512
#: Model streams per physical core on CPU: bursts of 8 k = 100 requests got 0.85x the in-process throughput
#: with 1 stream per core, 0.88x with 2 and 1.05x with 4; with 4, every k = 20 / 100 cell, steady and
#: bursty, got 0.98-1.05x (bench/results/model_streams.md).
CPU_STREAMS_PER_CORE = 4
TOKEN_ENV = "RERANK_AUTH_TOKEN"


class ConfigError(ValueError):
    """A bad setting (file or flag); the message names it."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    models: tuple[str, ...] = ("minilm",)  # the first is the default model
    store: str | None = None  # model store folder (default $RERANK_HOME/models)
    backend: str | None = None  # None: ONNX, or the CPU default an LLM's manifest records (models/cpu_default.py)
    model_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # load_model kwargs by name
    max_batch_items: int | None = None  # None: by model kind (AUTO_MAX_BATCH_ITEMS)
    max_wait_ms: float = 5.0  # wait for requests in flight to join a batch, at most this long
    linger_ms: float = 0.0  # every batch waits at least this long (bursty traffic; costs lone requests)
    max_queue_items: int = 2_000_000
    max_candidates: int = 1000
    max_workers: int = 64
    max_concurrent_rpcs: int = 256
    max_message_mb: int = 64
    grace_s: float = 10.0
    drain_s: float = 0.0
    metrics_port: int | None = None
    http_port: int | None = None  # the HTTP face (Cohere/TEI-compatible) on `host`; None = off
    # the HTTP face against slow and half-open clients (rerank/server/http_transport.py): a request's headers
    # within this many seconds of connecting (else 408 and closed), its body within this many of its headers,
    # an idle kept-alive connection closed after this many, and at most this many open connections (the
    # oldest idle one is closed to make room; 503 when all run requests)
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 60.0
    http_keep_alive_s: float = 5.0
    http_max_connections: int = 1000
    metrics_host: str = "127.0.0.1"
    tls_cert: str | None = None
    tls_key: str | None = None
    auth_token: str | None = field(default=None, repr=False)
    # `rerank serve` only (process-wide): Python's GIL switch interval. The default 5 ms lets a busy thread
    # delay the RPC threads by up to 5 ms; 1 ms keeps the hand-offs short. None keeps Python's default.
    switch_interval_ms: float | None = 1.0
    # run each model once on its largest batch shape before serving (memory peak reached up front)
    warmup: bool = True
    # HTTP: refuse unknown request fields (400 naming the field) instead of ignoring them with a warning
    strict_fields: bool = False
    # an index folder (`rerank index build`) searched by RetrieveAndRerank; its embedding model must be served
    index: str | None = None
    # check the index files against the checksums in its manifest when opening it (huge indexes may skip it)
    verify_index: bool = True
    # tokenize the next merged batch on the worker while a second thread runs the current one (bounded
    # hand-off of one batch); see bench/results/scheduler_overlap.md for what it buys
    overlap: bool = False
    # ONNX Runtime CPU intra-op threads spin between a call's operators only when True (ONNX Runtime's own
    # default). A served model's merged calls run back to back on one worker thread; on a machine shared with
    # other work the spinning thread burns the CPU the working one needs: the merged call of a burst of 8
    # k = 50 requests took 14.6 s of CPU spinning, 8.4 s not (bench/results/ort_spinning.md).
    # RERANK_ORT_SPINNING, if set, wins.
    ort_spinning: bool = False
    # concurrent model calls a batch of several requests may run as (scheduler ``streams``); None:
    # CPU_STREAMS_PER_CORE x the physical cores for a model on ONNX Runtime's CPU provider (a stream of
    # one-sequence calls leaves a core idle between calls), 1 otherwise (a GPU wants one big batch)
    model_streams: int | None = None
    # ONNX Runtime CUDA provider options for every model (model_options.<name>.cuda_options overrides):
    # the GPU, a cap on its memory arena in MiB, the arena's growth (kNextPowerOfTwo | kSameAsRequested)
    cuda_device: int | None = None
    gpu_mem_limit_mb: int | None = None
    arena_strategy: str | None = None

    def cuda_options(self) -> dict[str, Any] | None:
        """The CUDA provider options these settings give (None when none is set); checked at load."""
        out: dict[str, Any] = {}
        if self.cuda_device is not None:
            out["device_id"] = int(self.cuda_device)
        if self.gpu_mem_limit_mb is not None:
            out["gpu_mem_limit"] = int(self.gpu_mem_limit_mb) * 1024 * 1024
        if self.arena_strategy is not None:
            out["arena_extend_strategy"] = self.arena_strategy
        return out or None

    def __post_init__(self) -> None:
        positive = (
            "max_queue_items",
            "max_candidates",
            "max_workers",
            "max_concurrent_rpcs",
            "max_message_mb",
            "http_max_connections",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.model_streams is not None and self.model_streams < 1:
            raise ConfigError(f"model_streams must be >= 1, got {self.model_streams}")
        if self.max_batch_items is not None and self.max_batch_items < 1:
            raise ConfigError(f"max_batch_items must be >= 1, got {self.max_batch_items}")
        for name in ("max_wait_ms", "linger_ms", "grace_s", "drain_s"):
            if not float(getattr(self, name)) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("http_header_timeout_s", "http_body_timeout_s", "http_keep_alive_s"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.switch_interval_ms is not None and not self.switch_interval_ms > 0:
            raise ConfigError(f"switch_interval_ms must be > 0, got {self.switch_interval_ms}")
        for name in ("port", "http_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise ConfigError(f"{name} must be in 0..65535, got {value}")
        if not self.models:
            raise ConfigError("models must name at least one model")
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"models lists a model twice: {list(self.models)}")
        if self.cuda_options() is not None:

            try:
                CudaOptions.of(self.cuda_options())
            except ModelError as exc:
                raise ConfigError(str(exc)) from None
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together")

    def batch_items_for(self, kind: str) -> int:
        if self.max_batch_items is not None:
            return int(self.max_batch_items)
        return AUTO_MAX_BATCH_ITEMS.get(kind, DEFAULT_MAX_BATCH_ITEMS)

    def streams_for(self, provider: str) -> int:
        if self.model_streams is not None:
            return int(self.model_streams)
        return CPU_STREAMS_PER_CORE * physical_cores() if provider == CPU else 1

    def with_overrides(self, **values: Any) -> ServerConfig:
        """A copy with the given settings; ``None`` values are ignored (flags not given)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def read_token_file(path: str | Path) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read token file {str(path)!r}: {exc.strerror}") from None
    if not token:
        raise ConfigError(f"token file {str(path)!r} is empty")
    return token


def load_config(path: str | Path | None = None) -> ServerConfig:
    """Defaults, updated from a TOML (``.toml``) or JSON file. ``token_file`` in the file is read;
    ``$RERANK_AUTH_TOKEN`` sets the token when the file gives none."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read config {str(p)!r}: {exc.strerror}") from None
        try:
            if p.suffix == ".toml":
                try:
                    import tomllib
                except ImportError:  # Python 3.10
                    raise ConfigError("TOML configs need Python 3.11 or later; use JSON") from None
                data = tomllib.loads(raw.decode("utf-8"))
            else:
                data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot parse config {str(p)!r}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {str(p)!r} must be a table/object of settings")
        data = dict(data.get("server", data))
    known = {f.name for f in fields(ServerConfig)}
    token_file = data.pop("token_file", None)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if "models" in data:
        models = data["models"]
        data["models"] = (models,) if isinstance(models, str) else tuple(models)
    if token_file:
        data["auth_token"] = read_token_file(token_file)
    elif not data.get("auth_token") and os.environ.get(TOKEN_ENV):
        data["auth_token"] = os.environ[TOKEN_ENV]
    try:
        return ServerConfig(**data)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
