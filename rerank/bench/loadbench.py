"""Load benchmark of the gRPC server (``rerank bench load``, ``bench/load_bench.py``).

Workload: TREC DL 2019 passage queries with their BM25 top-k passages (k = 20 and 100), sampler ``all``.
Phases (``--phases``; results merge into ``<out>/<name>.json`` and ``.md``, so phases can run separately):

- ``throughput``: req/s and p50/p95/p99 latency at 1, 8 and 32 concurrent clients (one channel each) for
  each k, each for ``--seconds`` (every client finishes the request it started);
- ``compare``: the server at 8 clients against the same work in-process (``pipeline.rerank`` with the same
  model, 8 threads) for each k of ``--compare-ks`` and each traffic pattern of ``--patterns``: ``steady``
  (every client sends its next request as soon as the last one returns) and ``bursty`` (the 8 clients
  send together and wait for each other: synchronised bursts). The server is called through a bare stub
  and through ``RerankClient.rerank`` (``--client-paths``), the modes rotating within each rep; the
  figure is the median over reps of the per-rep throughput ratio server / in-process;
- ``overhead``: one client, k = 20: server and in-process calls of the same request alternated; the p50
  difference, plus the overhead measured directly (client latency minus the server's handler time, and
  handler time minus the pipeline's own time);
- ``memory``: RSS of the server process sampled during ``--memory-seconds`` at 8 clients.

By default the benchmark starts its own server (``python -m rerank.server serve --port 0``) so it can read
its RSS and metrics; ``--target`` uses a running server instead (RSS only with ``--server-pid``).
"""

from __future__ import annotations

import json
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import PHASES


# --- workload -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    qid: str
    query: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]


def data_folder(arg: str | None) -> Path:
    if arg:
        base = Path(arg)
    elif os.environ.get("RERANK_DATA"):
        base = Path(os.environ["RERANK_DATA"])
    else:
        base = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    folder = base / "trec-dl-2019-passage" if (base / "trec-dl-2019-passage").is_dir() else base
    if not (folder / "queries.tsv").is_file():
        raise FileNotFoundError(f"no DL19 data (queries.tsv) in {folder}; pass --data")
    return folder


def load_requests(folder: Path, k: int) -> list[Request]:
    from ..evaluation.trec import rank_docs, read_corpus, read_queries, read_run

    queries = read_queries(folder / "queries.tsv")
    corpus = read_corpus(folder / "corpus.jsonl")
    run = read_run(folder / "run.bm25.top100.trec")
    out = []
    for qid in sorted(run):
        docs = [d for d in rank_docs(run[qid]) if d in corpus][:k]
        if qid in queries and len(docs) == k:
            out.append(Request(qid, queries[qid], tuple(docs), tuple(corpus[d] for d in docs)))
    if not out:
        raise ValueError(f"no query with {k} judged BM25 candidates in {folder}")
    return out


# --- measurement --------------------------------------------------------------------------------------
@dataclass
class RunStats:
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: Counter = field(default_factory=Counter)
    wall: float = 0.0
    extra: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies) * 1000.0
        n = len(lat)
        return {
            "requests": n,
            "errors": sum(self.errors.values()),
            "error_codes": dict(self.errors),
            "seconds": round(self.wall, 3),
            "req_per_s": round(n / self.wall, 3) if self.wall > 0 else 0.0,
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if n else None,
            "p95_ms": round(float(np.percentile(lat, 95)), 2) if n else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if n else None,
            "mean_ms": round(float(lat.mean()), 2) if n else None,
        }


def drive(
    n_clients: int,
    seconds: float,
    make_call: Callable[[int], Callable[[Request], dict[str, float] | None]],
    requests: Sequence[Request],
) -> RunStats:
    """``n_clients`` threads send requests (round robin over ``requests``) for ``seconds``; each finishes
    the request it started. ``make_call(i)`` builds client i's call function."""
    stats = RunStats()
    lock = threading.Lock()
    counter = iter(range(1 << 62))
    calls = [make_call(i) for i in range(n_clients)]
    barrier = threading.Barrier(n_clients + 1)
    state: dict[str, float] = {}

    def worker(i: int) -> None:
        call = calls[i]
        barrier.wait()
        while time.perf_counter() < state["end"]:
            with lock:
                req = requests[next(counter) % len(requests)]
            t0 = time.perf_counter()
            try:
                extra = call(req)
            except Exception as exc:
                code = getattr(getattr(exc, "code", None), "name", None) or type(exc).__name__
                with lock:
                    stats.errors[str(code)] += 1
                continue
            dt = time.perf_counter() - t0
            with lock:
                stats.latencies.append(dt)
                if extra:
                    stats.extra.append(extra)
                state["last"] = time.perf_counter()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n_clients)]
    for t in threads:
        t.start()
    state["start"] = time.perf_counter()
    state["end"] = state["start"] + seconds
    state["last"] = state["start"]
    barrier.wait()
    for t in threads:
        t.join()
    stats.wall = state["last"] - state["start"]
    return stats


def drive_bursty(
    n_clients: int,
    seconds: float,
    make_call: Callable[[int], Callable[[Request], dict[str, float] | None]],
    requests: Sequence[Request],
) -> RunStats:
    """Synchronised bursts: all ``n_clients`` threads send one request each at the same moment, and the next
    burst starts when the whole burst has returned; bursts start until ``seconds`` have passed."""
    stats = RunStats()
    lock = threading.Lock()
    calls = [make_call(i) for i in range(n_clients)]
    start = threading.Barrier(n_clients + 1)
    done = threading.Barrier(n_clients + 1)
    burst = {"index": 0, "stop": False}

    def worker(i: int) -> None:
        while True:
            start.wait()
            if burst["stop"]:
                return
            req = requests[(burst["index"] * n_clients + i) % len(requests)]
            t0 = time.perf_counter()
            try:
                calls[i](req)
                with lock:
                    stats.latencies.append(time.perf_counter() - t0)
            except Exception as exc:
                code = getattr(getattr(exc, "code", None), "name", None) or type(exc).__name__
                with lock:
                    stats.errors[str(code)] += 1
            done.wait()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n_clients)]
    for t in threads:
        t.start()
    t_start = time.perf_counter()
    while time.perf_counter() < t_start + seconds:
        start.wait()
        done.wait()
        burst["index"] += 1
    stats.wall = time.perf_counter() - t_start
    burst["stop"] = True
    start.wait()
    for t in threads:
        t.join()
    return stats


DRIVERS = {"steady": drive, "bursty": drive_bursty}


class ServerProcess:
    """``python -m rerank.server serve`` on a free port, with metrics; stopped with SIGTERM."""

    def __init__(
        self,
        model: str = "minilm",
        store: str | None = None,
        max_wait_ms: float = 5.0,
        linger_ms: float = 0.0,
        command: list[str] | None = None,
        model_options: dict[str, Any] | None = None,
    ) -> None:
        cmd = command or [
            sys.executable,
            "-m",
            "rerank.server",
            "serve",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--model",
            model,
            "--max-wait-ms",
            str(max_wait_ms),
            "--linger-ms",
            str(linger_ms),
            "--log-level",
            "WARNING",
        ]
        if store and command is None:
            cmd += ["--store", store]
        self._config: Path | None = None
        if model_options and command is None:  # per-model load options go through a config file
            fd, name = tempfile.mkstemp(prefix="rerank-load-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump({"model_options": {model: model_options}}, f)
            self._config = Path(name)
            cmd += ["--config", name]
        self.command = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout], daemon=True).start()
        self._stderr: list[str] = []
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True).start()
        try:
            line = lines.get(timeout=600)
        except queue.Empty:
            self.proc.kill()
            raise RuntimeError("server did not start: " + "".join(self._stderr[-20:])) from None
        if not line.startswith("rerank: serving on "):
            self.proc.kill()
            raise RuntimeError(f"unexpected server output {line!r}: " + "".join(self._stderr[-20:]))
        words = line.split()
        self.address = words[3]
        self.metrics = words[5] if len(words) > 5 else None
        self.pid = self.proc.pid

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(120)
        finally:
            if self._config is not None:
                self._config.unlink(missing_ok=True)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def scrape(metrics: str | None) -> dict[str, float]:
    if not metrics:
        return {}
    text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(
            ("rerank_batch_requests_sum", "rerank_batch_requests_count", "rerank_batch_items_sum")
        ):
            name = line.split("{")[0]
            out[name] = out.get(name, 0.0) + float(line.split()[-1])
    return out


# --- call factories -----------------------------------------------------------------------------------
def server_call(
    address: str, model: str, *, normalize: bool = False
) -> Callable[[int], Callable[[Request], dict[str, float]]]:
    """gRPC ``Rerank`` with a built request; ``normalize`` asks for scores a threshold can use (as HTTP does)."""
    from ..client import RerankClient, build_rerank_request

    def make(_i: int) -> Callable[[Request], dict[str, float]]:
        client = RerankClient(address, timeout=600)

        def call(req: Request) -> dict[str, float]:
            request = build_rerank_request(
                req.query, list(zip(req.ids, req.texts, strict=True)), models=[model], sampler="all",
                normalize=normalize,
            )
            response, rpc = client.stub.Rerank.with_call(request, timeout=600)
            server_ms = dict(rpc.trailing_metadata() or ()).get("rerank-server-ms")
            return {"server_ms": float(server_ms or "nan"), "pipeline_ms": response.usage.elapsed_ms}

        return call

    return make


def client_call(address: str, model: str) -> Callable[[int], Callable[[Request], dict[str, float]]]:
    """The server through the user-facing path: ``RerankClient.rerank`` (request building, retries, reply)."""
    from ..client import RerankClient

    def make(_i: int) -> Callable[[Request], dict[str, float]]:
        client = RerankClient(address, timeout=600)

        def call(req: Request) -> dict[str, float]:
            reply = client.rerank(req.query, list(zip(req.ids, req.texts, strict=True)), models=[model],
                                  sampler="all")
            return {"pipeline_ms": reply.usage.elapsed_ms}

        return call

    return make


def inprocess_call(
    model: Any, *, absolute_scores: bool = False
) -> Callable[[int], Callable[[Request], dict[str, float]]]:
    """``pipeline.run`` in this process; ``absolute_scores`` computes the scores HTTP answers carry too."""
    from ..pipeline import Candidate, RankOptions, RerankRequest, run

    options = RankOptions(sampler="all")

    def make(_i: int) -> Callable[[Request], dict[str, float]]:
        def call(req: Request) -> dict[str, float]:
            cands = tuple(Candidate(i, t) for i, t in zip(req.ids, req.texts, strict=True))
            request = RerankRequest(req.query, cands, ("model",), (), options, absolute_scores=absolute_scores)
            out = run(request, {"model": model})
            return {"pipeline_ms": out.usage.elapsed_ms}

        return call

    return make


# --- phases -------------------------------------------------------------------------------------------
def phase_throughput(
    args: Any, address: str, metrics: str | None, requests: dict[int, list[Request]]
) -> list[dict[str, Any]]:
    rows = []
    for k in _ints(args.ks):
        for n in _ints(args.clients):
            before, load0 = scrape(metrics), os.getloadavg()[0]
            stats = drive(n, args.seconds, server_call(address, args.model), requests[k])
            after = scrape(metrics)
            row = {"k": k, "clients": n, **stats.summary(), "loadavg": [load0, os.getloadavg()[0]]}
            calls = after.get("rerank_batch_requests_count", 0) - before.get("rerank_batch_requests_count", 0)
            merged = after.get("rerank_batch_requests_sum", 0) - before.get("rerank_batch_requests_sum", 0)
            row["model_calls"] = int(calls)
            row["requests_per_model_call"] = round(merged / calls, 2) if calls else None
            rows.append(row)
            _log(f"throughput k={k} clients={n}: {row}")
    return rows


def phase_compare(
    args: Any, address: str, model: Any, requests: dict[int, list[Request]]
) -> dict[str, Any]:
    """Per k and traffic pattern: reps of server (per call path) and in-process runs in rotating order; the
    ratio is the median over reps of the per-rep ratio, so one slow run does not lift or sink it."""
    makers: dict[str, Callable[[], Callable[[int], Callable[[Request], dict[str, float]]]]] = {
        "server": lambda: server_call(address, args.model),
        "server-client": lambda: client_call(address, args.model),
        "in-process": lambda: inprocess_call(model),
    }
    paths = {p.strip() for p in args.client_paths.split(",") if p.strip()}
    modes = [m for m in makers if m == "in-process" or {"server": "stub", "server-client": "client"}[m] in paths]
    runs, summary = [], []
    for k in _ints(args.compare_ks):
        for pattern in [p.strip() for p in args.patterns.split(",") if p.strip()]:
            driver = DRIVERS[pattern]
            for rep in range(args.compare_reps):
                shift = rep % len(modes)
                for mode in modes[shift:] + modes[:shift]:
                    stats = driver(8, args.compare_seconds, makers[mode](), requests[k])
                    runs.append({"k": k, "pattern": pattern, "rep": rep + 1, "mode": mode, **stats.summary()})
                    _log(f"compare k={k} {pattern} {mode} rep {rep + 1}: {runs[-1]}")
            local = [r for r in runs if (r["k"], r["pattern"], r["mode"]) == (k, pattern, "in-process")]
            for mode in modes:
                if mode == "in-process":
                    continue
                mine = [r for r in runs if (r["k"], r["pattern"], r["mode"]) == (k, pattern, mode)]
                ratios = [a["req_per_s"] / b["req_per_s"] for a, b in zip(mine, local, strict=True)
                          if b["req_per_s"] > 0]
                summary.append({
                    "k": k, "pattern": pattern, "mode": mode, "per_rep_ratios": [round(x, 3) for x in ratios],
                    "ratio": round(float(np.median(ratios)), 3) if ratios else None,
                    "server_p50_ms": round(float(np.median([r["p50_ms"] for r in mine])), 1),
                    "inprocess_p50_ms": round(float(np.median([r["p50_ms"] for r in local])), 1),
                })
    return {"clients": 8, "runs": runs, "summary": summary, "target": 0.85}


def _paired(
    srv: Callable[[Request], dict[str, float]],
    loc: Callable[[Request], dict[str, float]],
    requests: list[Request],
    pairs: int,
) -> dict[str, Any]:
    """Server and in-process calls of the same requests, alternated; latencies and the overhead parts."""
    srv(requests[0])
    loc(requests[0])
    rows = []
    for i in range(pairs):
        req = requests[i % len(requests)]
        order = ("server", "local") if i % 2 == 0 else ("local", "server")
        row: dict[str, float] = {}
        for mode in order:
            t0 = time.perf_counter()
            extra = srv(req) if mode == "server" else loc(req)
            row[f"{mode}_ms"] = (time.perf_counter() - t0) * 1000.0
            for key, value in extra.items():
                row[f"{mode}_{key}"] = value
        rows.append(row)
    s = np.array([r["server_ms"] for r in rows])
    loc_ms = np.array([r["local_ms"] for r in rows])
    transport = np.array([r["server_ms"] - r["server_server_ms"] for r in rows])
    handler = np.array([r["server_server_ms"] - r["server_pipeline_ms"] for r in rows])
    inside = np.array([r["server_pipeline_ms"] - r["local_pipeline_ms"] for r in rows])
    return {
        "pairs": len(rows),
        "server_p50_ms": round(float(np.median(s)), 3),
        "inprocess_p50_ms": round(float(np.median(loc_ms)), 3),
        "p50_difference_ms": round(float(np.median(s) - np.median(loc_ms)), 3),
        "median_paired_difference_ms": round(float(np.median(s - loc_ms)), 3),
        "paired_difference_iqr_ms": [round(float(np.percentile(s - loc_ms, q)), 3) for q in (25, 75)],
        "transport_p50_ms": round(float(np.median(transport)), 3),
        "transport_iqr_ms": [round(float(np.percentile(transport, q)), 3) for q in (25, 75)],
        "handler_outside_pipeline_p50_ms": round(float(np.median(handler)), 3),
        "pipeline_in_server_minus_inprocess_p50_ms": round(float(np.median(inside)), 3),
        "direct_overhead_p50_ms": round(float(np.median(transport + handler)), 3),
        "calls": rows,
    }


def phase_overhead(
    args: Any, address: str, model: Any, requests: list[Request]
) -> dict[str, Any]:
    out: dict[str, Any] = {"k": 20, "target_ms": 2.0}
    out["model"] = _paired(
        server_call(address, args.model)(0), inprocess_call(model)(0), requests, args.overhead_pairs
    )
    if args.overhead_fake_pairs > 0:
        from ..server.testing import FakeModel

        fake = ServerProcess(command=[sys.executable, "-m", "rerank.server.testing", "--port", "0"])
        try:
            out["fake"] = _paired(
                server_call(fake.address, "fake")(0),
                inprocess_call(FakeModel())(0),
                requests,
                args.overhead_fake_pairs,
            )
        finally:
            out["fake_server_exit_code"] = fake.stop()
    return out


def phase_memory(
    args: Any, address: str, pid: int | None, requests: list[Request]
) -> dict[str, Any]:
    if pid is None:
        return {"skipped": "no server pid (use the default self-started server or --server-pid)"}
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not stop.is_set():
            value = rss_mb(pid)
            if value is not None:
                samples.append((time.perf_counter() - t0, value))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stats = drive(8, args.memory_seconds, server_call(address, args.model), requests)
    stop.set()
    sampler.join()
    values = np.array([v for _, v in samples])
    warm = values[len(values) // 10 :] if len(values) >= 10 else values
    start, end = float(warm[0]), float(values[-1])
    return {
        "clients": 8,
        "k": 20,
        "seconds": round(stats.wall, 1),
        **{f"run_{k}": v for k, v in stats.summary().items() if k in ("requests", "errors", "req_per_s")},
        "rss_before_mb": round(float(values[0]), 1),
        "rss_after_warmup_mb": round(start, 1),
        "rss_end_mb": round(end, 1),
        "rss_max_mb": round(float(values.max()), 1),
        "growth_after_warmup_pct": round((end - start) / start * 100.0, 2),
        "max_over_warmup_pct": round((float(warm.max()) - start) / start * 100.0, 2),
        "target_pct": 10.0,
        "samples": [[round(t, 1), round(v, 1)] for t, v in samples[:: max(1, len(samples) // 60)]],
    }


# --- report -------------------------------------------------------------------------------------------
def _ints(text: str) -> list[int]:
    return [int(x) for x in str(text).split(",") if x.strip()]


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def machine() -> dict[str, Any]:
    import grpc
    import onnxruntime

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _load(part: dict[str, Any]) -> str:
    la = part.get("loadavg")
    return f"{la[0]:.1f}, {la[1]:.1f}" if la else "-"


def render(results: dict[str, Any]) -> str:
    lines = ["# gRPC server under load", ""]
    m = results.get("machine", {})
    lines += [
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores (the load average of each part is in "
        "its table); "
        f"python {m.get('python')}, grpcio {m.get('grpcio')}, onnxruntime {m.get('onnxruntime')}.  ",
        "Workload: TREC DL 2019 passage queries, BM25 top-k passages as candidates, sampler `all` "
        "(k(k-1) comparisons, k + 1 encodings for the bi-encoder), aggregator `bt`, model "
        f"`{results.get('model', 'minilm')}` as the server loads it (in-process: "
        f"`{results.get('inprocess_model', '?')}`), embedding cache off "
        f"(`--model-cache {results.get('model_cache_items', 0)}`). Each client has its own channel. "
        "Latency is client-observed. Server (started by the benchmark unless `--target`): "
        f"`{results.get('server_command', '?')}`.",
        "",
    ]
    t = results.get("throughput")
    if t:
        lines += [
            "## Throughput and latency",
            "",
            "Each configuration runs for the stated seconds; every client then finishes the request it "
            "started, so a configuration can last longer. Commands:",
            "",
            *sorted({f"- `{r['command']}` ({r['date']}; {r['seconds_per_config']} s)" for r in t["rows"]}),
            "",
            "| k | clients | requests | errors | req/s | p50 ms | p95 ms | p99 ms | model calls | "
            "requests per model call | load avg (start, end) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in t["rows"]:
            lines.append(
                f"| {r['k']} | {r['clients']} | {r['requests']} | {r['errors']} | {r['req_per_s']:.2f} | "
                f"{r['p50_ms']:,.0f} | {r['p95_ms']:,.0f} | {r['p99_ms']:,.0f} | {r['model_calls']} | "
                f"{r['requests_per_model_call']} | {_load(r)} |"
            )
        lines += ["", "p95/p99 over few requests are close to the maximum; read them as such.", ""]
    c = results.get("compare")
    if c and "summary" in c:
        lines += [
            "## Server vs in-process (8 concurrent clients / threads; steady and bursty traffic)",
            "",
            f"Command: `{c['command']}` ({c['date']}). Steady: each client sends its next request when the last "
            "returns. Bursty: the 8 clients send together and wait for each other. `server` calls a bare "
            "generated stub, `server-client` goes through `RerankClient.rerank`. Ratio: median over reps of "
            "the per-rep throughput ratio server / in-process (modes rotate within each rep).",
            "",
            "| k | pattern | mode | per-rep ratios | **median ratio** | server p50 ms | in-process p50 ms |",
            "| ---: | --- | --- | --- | ---: | ---: | ---: |",
        ]
        for r in c["summary"]:
            lines.append(
                f"| {r['k']} | {r['pattern']} | {r['mode']} | {', '.join(f'{x:.2f}' for x in r['per_rep_ratios'])}"
                f" | **{r['ratio']:.2f}** | {r['server_p50_ms']:,.0f} | {r['inprocess_p50_ms']:,.0f} |"
            )
        worst = min(r["ratio"] for r in c["summary"] if r["ratio"] is not None)
        lines += [
            "",
            f"Target >= {c['target']}x in every pattern and k: worst {worst:.2f}x "
            f"({'met' if worst >= c['target'] else 'NOT met'}). Load average (1 min): {_load(c)}.",
            "",
            "| k | pattern | rep | mode | requests | errors | req/s | p50 ms | p95 ms |",
            "| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in c["runs"]:
            lines.append(
                f"| {r['k']} | {r['pattern']} | {r['rep']} | {r['mode']} | {r['requests']} | {r['errors']} | "
                f"{r['req_per_s']:.2f} | {r['p50_ms'] or 0:,.0f} | {r['p95_ms'] or 0:,.0f} |"
            )
        lines.append("")
    o = results.get("overhead")
    if o and "model" in o:
        cols = [("model", "MiniLM (real model)")] + (
            [("fake", "zero-cost fake model")] if "fake" in o else []
        )
        rows = [
            ("calls (pairs, order alternated)", "pairs", "{:d}"),
            ("server p50, client-observed", "server_p50_ms", "{:,.2f}"),
            ("in-process p50", "inprocess_p50_ms", "{:,.2f}"),
            ("difference of the p50s", "p50_difference_ms", "{:,.2f}"),
            ("median of the paired differences", "median_paired_difference_ms", "{:,.2f}"),
            ("transport: client latency - server handler time, p50", "transport_p50_ms", "{:.3f}"),
            ("handler outside the pipeline (parse, checks, reply), p50", "handler_outside_pipeline_p50_ms",
             "{:.3f}"),
            ("**direct overhead**: transport + handler, p50 of the per-call sum", "direct_overhead_p50_ms",
             "**{:.3f}**"),
            ("pipeline time in the server - in-process (scheduler hand-off), p50",
             "pipeline_in_server_minus_inprocess_p50_ms", "{:,.3f}"),
        ]  # fmt: skip
        lines += [
            "## Server overhead over the in-process call (k = 20, one client)",
            "",
            f"Command: `{o['command']}` ({o['date']}). The same requests go to the server and to "
            "`pipeline.rerank` in the benchmark process, alternately. The server reports its handler time "
            "(`rerank-server-ms` trailing metadata) and the pipeline's time (`usage.elapsed_ms`), so the "
            "overhead is also measured per call, free of the model's call-to-call variation. The fake "
            "model (`python -m rerank.server.testing`, answers without computing) shows the serving cost "
            "alone.",
            "",
            "| ms | " + " | ".join(title for _, title in cols) + " |",
            "| --- |" + " ---: |" * len(cols),
        ]
        for label, key, fmt in rows:
            lines.append(f"| {label} | " + " | ".join(fmt.format(o[c][key]) for c, _ in cols) + " |")

        m = o["model"]
        verdict = [
            f"Target: p50 overhead < {o['target_ms']} ms for a k = 20 request. Real model: the difference "
            f"of the p50s is {m['p50_difference_ms']:+.1f} ms, inside the model's own call-to-call "
            f"variation; measured per call, transport + handler = {m['direct_overhead_p50_ms']:.2f} ms: "
            f"{'met' if m['direct_overhead_p50_ms'] < o['target_ms'] else 'NOT met'}."
        ]
        if "fake" in o:
            f = o["fake"]
            worst = max(f["p50_difference_ms"], f["median_paired_difference_ms"])
            verdict.append(
                f"Serving cost alone (fake model): p50 difference {f['p50_difference_ms']:.2f} ms, median "
                f"paired difference {f['median_paired_difference_ms']:.2f} ms, per call "
                f"{f['direct_overhead_p50_ms']:.2f} ms: {'met' if worst < o['target_ms'] else 'NOT met'}."
            )
        if o.get("loadavg"):
            verdict.append(
                f"Load average (1 min) of the machine during the run: {o['loadavg'][0]:.1f} at the start, "
                f"{o['loadavg'][1]:.1f} at the end, on {results.get('machine', {}).get('cores', '?')} cores."
            )
        lines += ["", " ".join(verdict), ""]
    mem = results.get("memory")
    if mem and "skipped" not in mem:
        met = "met" if abs(mem["growth_after_warmup_pct"]) <= mem["target_pct"] else "NOT met"
        lines += [
            "## Server memory under load (8 clients, k = 20)",
            "",
            f"Command: `{mem['command']}` ({mem['date']}); {mem['seconds']} s run, {mem['run_requests']} "
            f"requests, {mem['run_errors']} errors (the issue asks for 5 minutes: `--memory-seconds 300`).",
            "",
            "| RSS | MB |",
            "| --- | ---: |",
            f"| before the run (model loaded, idle) | {mem['rss_before_mb']:,.1f} |",
            f"| after warm-up (10% into the run) | {mem['rss_after_warmup_mb']:,.1f} |",
            f"| end of the run | {mem['rss_end_mb']:,.1f} |",
            f"| maximum | {mem['rss_max_mb']:,.1f} |",
            "",
            f"Growth after warm-up: {mem['growth_after_warmup_pct']:+.1f}% (max "
            f"{mem['max_over_warmup_pct']:+.1f}%); target flat within {mem['target_pct']:.0f}%: {met}. "
            f"Load average (1 min): {_load(mem)}.",
            "",
        ]
    return "\n".join(lines)


def run(args: Any) -> int:
    """``rerank bench load`` with its parsed options; 0 when no request failed."""
    phases = [p for p in PHASES if p in args.phases]  # checked against PHASES when parsed
    folder = data_folder(args.data)
    ks = sorted(set(_ints(args.ks)) | ({20} if {"compare", "overhead", "memory"} & set(phases) else set())
                | (set(_ints(args.compare_ks)) if "compare" in phases else set()))
    requests = {k: load_requests(folder, k) for k in ks}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{args.name}.json"
    results: dict[str, Any] = json.loads(json_path.read_text()) if json_path.is_file() else {}
    results["machine"] = machine()
    results["model"] = args.model
    results["model_cache_items"] = args.model_cache
    command = (
        "python bench/load_bench.py " + " ".join(sys.argv[1:])
        if sys.argv[0].endswith("load_bench.py")
        else " ".join(["rerank", *sys.argv[1:]])
    )
    stamp = time.strftime("%Y-%m-%d %H:%M")
    server = None
    if args.target:
        address, metrics, pid = args.target, None, args.server_pid
        results["server_command"] = f"a running server at {args.target}"
    else:
        _log("starting the server ...")
        server = ServerProcess(
            args.model, args.store, args.max_wait_ms, args.linger_ms, model_options={"cache_items": args.model_cache}
        )
        address, metrics, pid = server.address, server.metrics, server.pid
        results["server_command"] = "python " + " ".join(server.command[1:])
        _log(f"server pid {pid} on {address}")
    local_model = None
    if {"compare", "overhead"} & set(phases):
        from ..server.app import load_models
        from ..server.config import ServerConfig

        # the same variant the server serves (see app.load_models)
        config = ServerConfig(
            models=(args.model,), store=args.store, model_options={args.model: {"cache_items": args.model_cache}}
        )
        local_model = load_models(config)[args.model]
        results["inprocess_model"] = repr(local_model)
    errors = 0
    try:
        from ..client import RerankClient

        with RerankClient(address, timeout=600) as c:  # warm-up
            r = requests[ks[0]][0]
            c.rerank(r.query, list(zip(r.ids, r.texts, strict=True)), sampler="all")
        if "throughput" in phases:
            rows = phase_throughput(args, address, metrics, requests)
            errors += sum(r["errors"] for r in rows)
            for row in rows:
                row.update(command=command, date=stamp, seconds_per_config=args.seconds)
            kept = [
                r
                for r in results.get("throughput", {}).get("rows", [])
                if (r["k"], r["clients"]) not in {(x["k"], x["clients"]) for x in rows}
            ]
            merged = sorted(kept + rows, key=lambda r: (r["k"], r["clients"]))
            results["throughput"] = {"rows": merged}
        if "compare" in phases:
            load0 = os.getloadavg()[0]
            res = phase_compare(args, address, local_model, requests)
            errors += sum(r["errors"] for r in res["runs"])
            results["compare"] = {
                "command": command,
                "date": stamp,
                **res,
                "loadavg": [load0, os.getloadavg()[0]],
            }
        if "overhead" in phases:
            load0 = os.getloadavg()[0]
            results["overhead"] = {
                "command": command,
                "date": stamp,
                **phase_overhead(args, address, local_model, requests[20]),
                "loadavg": [load0, os.getloadavg()[0]],
            }
        if "memory" in phases:
            load0 = os.getloadavg()[0]
            res = phase_memory(args, address, pid, requests[20])
            errors += int(res.get("run_errors", 0))
            results["memory"] = {
                "command": command,
                "date": stamp,
                **res,
                "loadavg": [load0, os.getloadavg()[0]],
            }
    finally:
        if server is not None:
            code = server.stop()
            results["server_exit_code"] = code
            _log(f"server stopped with exit code {code}")
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{args.name}.md").write_text(render(results))
    _log(f"wrote {json_path} and {out / (args.name + '.md')}")
    return 0 if errors == 0 else 1
