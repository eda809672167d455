"""``rerank serve``: the server's command (a click command; ``rerank.cli`` adds it to the ``rerank`` tree, and
``python -m rerank.server serve`` runs the same command). Imports no gRPC until the command runs."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

import click

from ..cli_options import CONTEXT, FOLDER, IN_FILE, namespace, run_command, store_option

log = logging.getLogger("rerank.server")


SERVE_HELP = (
    "Serve rerank.v1.Reranker (plus gRPC health and reflection) until SIGTERM or SIGINT, then stop gracefully. "
    "Prints 'rerank: serving on HOST:PORT' when ready. With --index, RetrieveAndRerank searches that index, "
    "opened once at start-up: restart the server to search documents added later with `rerank index add`. "
    "A flag given overrides the same setting of --config."
)


@click.command("serve", help=SERVE_HELP, short_help="start the gRPC re-ranking server (default model: minilm)",
               context_settings=CONTEXT)
@click.option("--host", default=None, help="address to listen on (default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default 50051; 0 picks a free one)")
@click.option("--model", "model", multiple=True, metavar="NAME",
              help="model to serve (repeat for several; the first is the default; default minilm)")
@click.option("--config", type=IN_FILE, default=None, metavar="FILE", help="settings file (.toml or .json)")
@click.option("--index", type=FOLDER, default=None, metavar="DIR",
              help="index folder (rerank index build) for RetrieveAndRerank; its embedding model must be served. "
                   "It is opened once at start-up: restart the server to search documents added later with "
                   "`rerank index add`")
@click.option("--no-verify-index", "verify_index", flag_value=False, default=None,
              help="skip checking the --index files against the sha256 checksums in its manifest at start-up "
                   "(the check hashes every byte once, about as long as reading the index: skip it only for "
                   "huge indexes)")
@store_option
@click.option("--metrics-port", type=int, default=None, metavar="N",
              help="serve Prometheus metrics on this HTTP port (0 picks one)")
@click.option("--http-port", type=int, default=None, metavar="N",
              help="also serve the HTTP API (Cohere/TEI-compatible) on this port (0 picks one; default off)")
@click.option("--metrics-host", default=None, help="address of the metrics endpoint (default 127.0.0.1)")
@click.option("--max-batch-items", type=int, default=None,
              help="most comparisons merged into one model call (default: by model kind)")
@click.option("--max-wait-ms", type=float, default=None,
              help="longest a queued comparison waits for others to join its batch (default 5)")
@click.option("--linger-ms", type=float, default=None, help="every batch waits at least this long for company "
                                                            "(default 0)")
@click.option("--max-queue-items", type=int, default=None,
              help="comparisons queued per model before RESOURCE_EXHAUSTED (default 2000000)")
@click.option("--max-candidates", type=int, default=None,
              help="most candidates per request before RESOURCE_EXHAUSTED (default 1000)")
@click.option("--workers", "max_workers", type=int, default=None, help="RPC handler threads (default 64)")
@click.option("--grace", "grace_s", type=float, default=None,
              help="seconds in-flight requests get to finish on SIGTERM (default 10)")
@click.option("--drain", "drain_s", type=float, default=None,
              help="seconds to report NOT_SERVING before refusing new requests (default 0)")
@click.option("--no-warmup", "warmup", flag_value=False, default=None,
              help="skip the start-up run of each model on its largest batch shape")
@click.option("--strict-fields", "strict_fields", flag_value=True, default=None,
              help="HTTP: refuse unknown request fields (400) instead of ignoring them with a warning")
@click.option("--tls-cert", type=IN_FILE, default=None, help="PEM certificate chain (with --tls-key: TLS)")
@click.option("--tls-key", type=IN_FILE, default=None, help="PEM private key")
@click.option("--token-file", type=IN_FILE, default=None,
              help="require 'authorization: Bearer <token>' with the token in this file (or set $RERANK_AUTH_TOKEN)")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              default="INFO", help="logging level (default INFO)")
@click.option("--overlap/--no-overlap", default=None,
              help="tokenize the next batch while the current one runs (default off)")
@click.option("--cuda-device", type=int, default=None, metavar="N", help="ONNX Runtime CUDA: the GPU to run on "
                                                                         "(default 0)")
@click.option("--gpu-mem-limit-mb", type=int, default=None, metavar="MB",
              help="ONNX Runtime CUDA: cap of each model's memory arena (default: no cap)")
@click.option("--arena-strategy", type=click.Choice(["kNextPowerOfTwo", "kSameAsRequested"]), default=None,
              help="ONNX Runtime CUDA: how the memory arena grows (default kNextPowerOfTwo)")
@click.option("--model-streams", type=click.IntRange(min=1), default=None, metavar="N",
              help="concurrent model calls per model (default: 4 per physical core for ONNX Runtime on CPU, else 1)")
@click.option("--ort-spinning/--no-ort-spinning", default=None,
              help="let ONNX Runtime's threads busy-wait between operators (default off: spinning threads took "
                   "CPU from the working ones under load)")
def serve(**params: Any) -> int:
    return run_serve(namespace(params))


def serve_args(argv: list[str]) -> Any:
    """The settings ``rerank serve ARGV`` would run with (for tests and deploy checks)."""
    with serve.make_context("serve", list(argv)) as ctx:
        return namespace(ctx.params)


def build_config(args: Any) -> Any:
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
            "strict_fields",
            "index",
            "verify_index",
            "overlap",
            "cuda_device",
            "gpu_mem_limit_mb",
            "arena_strategy",
            "model_streams",
            "ort_spinning",
        )
    }
    if args.model:
        overrides["models"] = tuple(args.model)
    if args.token_file:
        overrides["auth_token"] = read_token_file(args.token_file)
    return config.with_overrides(**overrides)


def run_serve(args: Any) -> int:
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
        if server.abandoned:  # a model call outlived the grace: exit now, not when it ends (see ABANDON_S)
            logging.shutdown()
            sys.stderr.flush()
            os._exit(0)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ``python -m rerank.server``: the same ``serve`` command (rerank/server/__main__.py)
server_cli = click.Group("python -m rerank.server", commands=[serve], context_settings=CONTEXT,
                         help="The rerank gRPC server: `python -m rerank.server serve` is `rerank serve`.")


def main(argv: list[str] | None = None) -> int:
    return run_command(server_cli, argv, "python -m rerank.server")
