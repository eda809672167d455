"""Command-line faces of the server: ``rerank serve`` and ``rerank bench load``.

``rerank.cli`` wires them in with ``add_serve_arguments``/``run_serve`` and
``add_bench_load_arguments``/``run_bench_load``; ``python -m rerank.server serve|bench-load`` works too.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

log = logging.getLogger("rerank.server")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``rerank serve``; a flag given overrides the same setting of ``--config``."""
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 50051; 0 picks a free one)")
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME",
        help="model to serve (repeat for several; the first is the default; default minilm)",
    )
    parser.add_argument("--config", default=None, metavar="FILE", help="settings file (.toml or .json)")
    parser.add_argument(
        "--index",
        default=None,
        metavar="DIR",
        help="index folder (rerank index build) for RetrieveAndRerank; its embedding model must be served. "
        "It is opened once at start-up: restart the server to search documents added later with "
        "`rerank index add`",
    )
    parser.add_argument(
        "--no-verify-index",
        dest="verify_index",
        action="store_false",
        default=None,
        help="skip checking the --index files against the sha256 checksums in its manifest at start-up "
        "(the check hashes every byte once, about as long as reading the index: skip it only for huge indexes)",
    )
    parser.add_argument("--store", default=None, help="model store folder (default $RERANK_HOME/models)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="N",
        help="serve Prometheus metrics on this HTTP port (0 picks one)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=None,
        metavar="N",
        help="also serve the HTTP API (Cohere/TEI-compatible) on this port (0 picks one; default off)",
    )
    parser.add_argument(
        "--metrics-host", default=None, help="address of the metrics endpoint (default 127.0.0.1)"
    )
    parser.add_argument(
        "--max-batch-items",
        type=int,
        default=None,
        help="most comparisons merged into one model call (default: by model kind)",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=None,
        help="longest a queued comparison waits for others to join its batch (default 5)",
    )
    parser.add_argument(
        "--linger-ms",
        type=float,
        default=None,
        help="every batch waits at least this long for company (default 0)",
    )
    parser.add_argument(
        "--max-queue-items",
        type=int,
        default=None,
        help="comparisons queued per model before RESOURCE_EXHAUSTED (default 2000000)",
    )
    parser.add_argument(
        "--max-candidates",
        type=int,
        default=None,
        help="most candidates per request before RESOURCE_EXHAUSTED (default 1000)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, dest="max_workers", help="RPC handler threads (default 64)"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=None,
        dest="grace_s",
        help="seconds in-flight requests get to finish on SIGTERM (default 10)",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=None,
        dest="drain_s",
        help="seconds to report NOT_SERVING before refusing new requests (default 0)",
    )
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        default=None,
        help="skip the start-up run of each model on its largest batch shape",
    )
    parser.add_argument("--tls-cert", default=None, help="PEM certificate chain (with --tls-key: TLS)")
    parser.add_argument("--tls-key", default=None, help="PEM private key")
    parser.add_argument(
        "--token-file",
        default=None,
        help="require 'authorization: Bearer <token>' with the token in this file "
        "(or set $RERANK_AUTH_TOKEN)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=None,
                        help="tokenize the next batch while the current one runs (default off)")
    parser.add_argument("--cuda-device", type=int, default=None, metavar="N",
                        help="ONNX Runtime CUDA: the GPU to run on (default 0)")
    parser.add_argument("--gpu-mem-limit-mb", type=int, default=None, metavar="MB",
                        help="ONNX Runtime CUDA: cap of each model's memory arena (default: no cap)")
    parser.add_argument("--arena-strategy", choices=["kNextPowerOfTwo", "kSameAsRequested"], default=None,
                        help="ONNX Runtime CUDA: how the memory arena grows (default kNextPowerOfTwo)")


def build_config(args: argparse.Namespace) -> Any:
    from .config import load_config, read_token_file

    config = load_config(args.config)
    overrides: dict[str, Any] = {
        name: getattr(args, name, None)
        for name in (
            "host",
            "port",
            "store",
            "metrics_port",
            "metrics_host",
            "http_port",
            "max_batch_items",
            "max_wait_ms",
            "linger_ms",
            "max_queue_items",
            "max_candidates",
            "max_workers",
            "grace_s",
            "drain_s",
            "tls_cert",
            "tls_key",
            "warmup",
            "index",
            "verify_index",
            "overlap",
            "cuda_device",
            "gpu_mem_limit_mb",
            "arena_strategy",
        )
    }
    if args.model:
        overrides["models"] = tuple(args.model)
    if args.token_file:
        overrides["auth_token"] = read_token_file(args.token_file)
    return config.with_overrides(**overrides)


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then stop gracefully; 0 on a clean stop."""
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from ..retrieval.errors import RetrievalError
    from .app import RerankServer
    from .config import ConfigError

    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    # installed first: a SIGTERM while the models load still ends in a clean stop
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            config = build_config(args)
            server = RerankServer(config)
            port = server.start()
        except (ConfigError, RetrievalError, OSError, ValueError, RuntimeError) as exc:
            sys.stderr.write(f"rerank: error: cannot start the server: {exc}\n")
            return 1
        if config.switch_interval_ms:
            sys.setswitchinterval(config.switch_interval_ms / 1000.0)
        # one machine-readable line for scripts and tests (port 0 picks a free port)
        metrics = f" metrics {config.metrics_host}:{server.metrics_port}" if server.metrics_port else ""
        http = f" http {config.host}:{server.http_port}" if server.http_port else ""
        print(f"rerank: serving on {config.host}:{port}{metrics}{http}", flush=True)
        while not stop.wait(1.0):
            pass
        log.info("received %s: shutting down", received[0] if received else "stop")
        server.stop()
        print("rerank: stopped", flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def add_bench_load_arguments(parser: argparse.ArgumentParser) -> None:
    from .loadbench import add_arguments

    add_arguments(parser)


def run_bench_load(args: argparse.Namespace) -> int:
    from .loadbench import run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rerank.server", description="The rerank gRPC server.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the gRPC re-ranking server")
    add_serve_arguments(serve)
    serve.set_defaults(func=run_serve)
    bench = sub.add_parser("bench-load", help="load benchmark against the server (rerank bench load)")
    add_bench_load_arguments(bench)
    bench.set_defaults(func=run_bench_load)
    args = parser.parse_args(argv)
    return int(args.func(args))
