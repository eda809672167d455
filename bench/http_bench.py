"""HTTP vs gRPC vs in-process, side by side in one run: one server process serves both faces (``rerank
serve --http-port``); the same DL19 requests (BM25 top-k passages, sampler ``all``) go through the Cohere
shape (``POST /v2/rerank``, one httpx client with keep-alive per client thread), through gRPC (one channel
per client) and through ``pipeline.rerank`` in this process (the same model variant, one thread per
client), at 1 and 8 clients, k = 20 and 100. Runs are interleaved (mode order rotated every repetition) so
the shared machine's noise falls on all three alike. Writes ``<out>/http.json`` and ``http.md``.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/http_bench.py --out bench/results

Goal (issue 16): HTTP >= 0.85x in-process throughput at 8 clients.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from rerank.bench.loadbench import (
    Request,
    ServerProcess,
    data_folder,
    drive,
    inprocess_call,
    load_requests,
    machine,
    server_call,
)
from rerank.server.app import load_models
from rerank.server.config import ServerConfig

MODES = ("http", "grpc", "in-process")
GOAL = 0.85
SCORES = {
    "absolute": "every face computes the scores a threshold can use (HTTP always; gRPC `score_format: "
    "NORMALIZED`; in-process `absolute_scores=True`): the same work on every face.",
    "latent": "HTTP computes the scores a threshold can use (one more pass of the bi-encoder per request), "
    "gRPC and in-process return latent scores only.",
}


def http_call(base: str, model: str):
    """Client i's call: the Cohere v2 shape over one keep-alive httpx client."""

    def make(_i: int):
        client = httpx.Client(base_url=base, timeout=600)

        def call(req: Request) -> dict[str, float]:
            body = {"model": model, "query": req.query, "documents": list(req.texts), "sampler": "all"}
            response = client.post("/v2/rerank", json=body)
            response.raise_for_status()
            return {
                "server_ms": float(response.headers["x-rerank-server-ms"]),
                "pipeline_ms": response.json()["meta"]["usage"]["elapsed_ms"],
            }

        return call

    return make


def overhead(requests: list[Request], pairs: int) -> dict[str, Any]:
    """The serving cost of each face alone: a zero-cost fake model behind both faces, the same k = 20
    request over HTTP and gRPC alternately (order flipped every pair); client latency and transport (client
    latency minus the server's handler time) per face, and the paired HTTP - gRPC difference."""
    port = free_port("127.0.0.1")
    command = [sys.executable, "-m", "rerank.server.testing", "--port", "0", "--http-port", str(port)]
    fake = ServerProcess(command=command)
    try:
        calls = {
            "http": http_call(f"http://127.0.0.1:{port}", "fake")(0),
            "grpc": server_call(fake.address, "fake")(0),
        }
        for call in calls.values():
            call(requests[0])
        rows = []
        for i in range(pairs):
            req = requests[i % len(requests)]
            row: dict[str, float] = {}
            for mode in ("http", "grpc") if i % 2 == 0 else ("grpc", "http"):
                t0 = time.perf_counter()
                server_ms = calls[mode](req)["server_ms"]
                row[mode] = (time.perf_counter() - t0) * 1000.0
                row[f"{mode}_transport"] = row[mode] - server_ms
            rows.append(row)
    finally:
        code = fake.stop()

    def p50(values: list[float]) -> float:
        return round(float(np.median(values)), 3)

    return {
        "k": len(requests[0].ids),
        "pairs": pairs,
        "http_p50_ms": p50([r["http"] for r in rows]),
        "grpc_p50_ms": p50([r["grpc"] for r in rows]),
        "paired_difference_p50_ms": p50([r["http"] - r["grpc"] for r in rows]),
        "http_transport_p50_ms": p50([r["http_transport"] for r in rows]),
        "grpc_transport_p50_ms": p50([r["grpc_transport"] for r in rows]),
        "fake_server_exit_code": code,
    }


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace) -> tuple[ServerProcess, str, Path]:
    """Both faces in one ``rerank serve`` process, embedding cache off (the workload repeats requests)."""
    fd, name = tempfile.mkstemp(prefix="rerank-http-bench-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"model_options": {args.model: {"cache_items": 0}}}, f)
    http_port = free_port("127.0.0.1")
    command = [
        sys.executable, "-m", "rerank.server", "serve", "--port", "0", "--http-port", str(http_port),
        "--metrics-port", "0", "--model", args.model, "--log-level", "WARNING", "--config", name,
    ]  # fmt: skip
    if args.store:
        command += ["--store", args.store]
    return ServerProcess(command=command), f"http://127.0.0.1:{http_port}", Path(name)


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (k, clients): pooled req/s of each mode over the repetitions, and the ratios to in-process."""
    rows = []
    for k, clients in sorted({(r["k"], r["clients"]) for r in runs}):
        if {r["mode"] for r in runs if (r["k"], r["clients"]) == (k, clients)} != set(MODES):
            continue  # not measured in every mode (yet)
        row: dict[str, Any] = {"k": k, "clients": clients}
        for mode in MODES:
            mine = [r for r in runs if (r["k"], r["clients"], r["mode"]) == (k, clients, mode)]
            requests, seconds = sum(r["requests"] for r in mine), sum(r["seconds"] for r in mine)
            row[f"{mode}_req_per_s"] = round(requests / seconds, 3) if seconds else 0.0
            row[f"{mode}_p50_ms"] = round(sorted(r["p50_ms"] for r in mine)[len(mine) // 2], 1)
            row[f"{mode}_errors"] = sum(r["errors"] for r in mine)
        local = row["in-process_req_per_s"]
        for mode in ("http", "grpc"):
            row[f"{mode}_ratio"] = round(row[f"{mode}_req_per_s"] / local, 3) if local else None
        row["http_vs_grpc"] = round(row["http_req_per_s"] / row["grpc_req_per_s"], 3) if row["grpc_req_per_s"] else None
        rows.append(row)
    return rows


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# HTTP vs gRPC vs in-process",
        "",
        f"Command: `{results['command']}` ({results['date']}). Machine: {m['cpu']}, {m['cores']} cores; python "
        f"{m['python']}, grpcio {m['grpcio']}, onnxruntime {m['onnxruntime']}, fastapi {results['fastapi']}, "
        f"uvicorn {results['uvicorn']}. Server: `{results['server_command']}` (both faces in one process, "
        f"one scheduler). Workload: {results['queries']} TREC DL 2019 queries, BM25 top-k passages, sampler "
        f"`all`, model `{results['model']}` (in-process: `{results['inprocess_model']}`), embedding cache off; "
        f"{SCORES[results.get('scores', 'latent')]} "
        f"{results['reps']} repetitions of {results['seconds']} s per mode and configuration, interleaved "
        "(the mode order rotates each repetition); req/s pooled over the repetitions, p50 the median run's. "
        f"Load average (1 min): {results['loadavg'][0]:.1f} at the start, {results['loadavg'][1]:.1f} at the end.",
        "",
        "| k | clients | HTTP req/s | gRPC req/s | in-process req/s | HTTP / in-process | gRPC / in-process | "
        "HTTP / gRPC | p50 ms HTTP / gRPC / in-process | errors |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in results["summary"]:
        errors = r["http_errors"] + r["grpc_errors"] + r["in-process_errors"]
        lines.append(
            f"| {r['k']} | {r['clients']} | {r['http_req_per_s']:.2f} | {r['grpc_req_per_s']:.2f} | "
            f"{r['in-process_req_per_s']:.2f} | **{r['http_ratio']:.2f}x** | {r['grpc_ratio']:.2f}x | "
            f"{r['http_vs_grpc']:.2f}x | {r['http_p50_ms']:,.0f} / {r['grpc_p50_ms']:,.0f} / "
            f"{r['in-process_p50_ms']:,.0f} | {errors} |"
        )
    ratios = [(r, mode) for r in results["summary"] for mode in ("http", "grpc")]
    verdict = ", ".join(f"{mode} k = {r['k']} x {r['clients']}: {r[f'{mode}_ratio']:.2f}x" for r, mode in ratios)
    met = bool(ratios) and all(r[f"{mode}_ratio"] >= GOAL for r, mode in ratios)
    lines += [
        "",
        f"Goal (issue 23): HTTP and gRPC >= {GOAL}x in-process in every row ({verdict or 'not measured'}): "
        f"{'met' if met else 'NOT met'}. In-process, "
        "the threads call the model concurrently (one ONNX Runtime session); the server merges the "
        "concurrent requests' comparisons into shared model calls. Every run's figures are in `http.json`.",
        "",
    ]
    o = results.get("overhead")
    if o:
        lines += [
            f"## Serving cost of each face alone (zero-cost fake model, k = {o['k']}, one client)",
            "",
            f"{o['pairs']} pairs of the same request over HTTP (`/v2/rerank`, httpx keep-alive) and gRPC, "
            "alternated: client latency p50 HTTP "
            f"**{o['http_p50_ms']:.2f} ms** vs gRPC **{o['grpc_p50_ms']:.2f} ms** (paired HTTP - gRPC "
            f"difference p50 {o['paired_difference_p50_ms']:+.2f} ms); transport (client latency - server "
            f"handler time) p50 HTTP {o['http_transport_p50_ms']:.2f} ms, gRPC {o['grpc_transport_p50_ms']:.2f} "
            "ms. The HTTP handler time includes JSON parsing and validation; the gRPC one starts after "
            "protobuf decoding.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="http_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--store", default=None, help="model store folder (default $RERANK_HOME/models)")
    parser.add_argument("--data", default=None, help="folder with trec-dl-2019-passage")
    parser.add_argument("--ks", default="20,100")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds per run (default 12)")
    parser.add_argument("--reps", type=int, default=2, help="repetitions (default 2)")
    parser.add_argument(
        "--overhead-pairs", type=int, default=300, help="HTTP/gRPC call pairs on a fake model (0 = skip)"
    )
    parser.add_argument(
        "--scores", choices=("absolute", "latent"), default="absolute",
        help="absolute (default): gRPC and in-process compute the scores a threshold can use, as every HTTP "
        "answer does (the same work on every face); latent: they return latent scores only",
    )
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--name", default="http")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped benchmark still stops its server
    import fastapi
    import uvicorn

    ks = [int(x) for x in args.ks.split(",")]
    clients = [int(x) for x in args.clients.split(",")]
    folder = data_folder(args.data)
    requests = {k: load_requests(folder, k) for k in ks}
    config = ServerConfig(models=(args.model,), store=args.store, model_options={args.model: {"cache_items": 0}})
    local = load_models(config)[args.model]  # the variant the server serves
    server, base, config_file = start_server(args)
    load0 = os.getloadavg()[0]
    makers = {
        "http": http_call(base, args.model),
        "grpc": server_call(server.address, args.model, normalize=args.scores == "absolute"),
        "in-process": inprocess_call(local, absolute_scores=args.scores == "absolute"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": "python bench/http_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
        "model": args.model,
        "inprocess_model": repr(local),
        "server_command": "python " + " ".join(server.command[1:]),
        "queries": {k: len(v) for k, v in requests.items()},
        "seconds": args.seconds,
        "reps": args.reps,
        "goal": GOAL,
        "scores": args.scores,
        "runs": [],
    }

    def write() -> None:  # after every run: a stopped benchmark keeps what it measured
        results["loadavg"] = [load0, os.getloadavg()[0]]
        results["summary"] = summarize(results["runs"])
        (out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / f"{args.name}.md").write_text(render(results))

    runs: list[dict[str, Any]] = results["runs"]
    try:
        for mode in MODES:  # warm-up
            makers[mode](0)(requests[ks[0]][0])
        for rep in range(args.reps):
            for k in ks:
                for n in clients:
                    order = MODES[rep % 3 :] + MODES[: rep % 3]
                    for mode in order:
                        stats = drive(n, args.seconds, makers[mode], requests[k])
                        runs.append({"rep": rep + 1, "k": k, "clients": n, "mode": mode, **stats.summary()})
                        sys.stderr.write(f"{runs[-1]}\n")
                        write()
    finally:
        results["server_exit_code"] = server.stop()
        config_file.unlink(missing_ok=True)
        write()
    if args.overhead_pairs > 0:
        results["overhead"] = overhead(requests[min(ks)], args.overhead_pairs)
        write()
    sys.stderr.write(render(results))
    errors = sum(r["errors"] for r in runs)
    return 0 if errors == 0 and results["server_exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
