"""Stress harness of a server's stop: a ``rerank serve`` subprocess on 127.0.0.1 stopped by SIGTERM while
clients churn gRPC health ``Watch`` streams (:func:`health_churn_round`) or keep requests in flight
(:func:`loaded_sigterm_round`); each round reports how long the process took to exit after the signal.
Used by ``tests/test_server_stop_stress.py``, ``tests/test_server_flood.py`` and ``bench/server_stress_bench.py``;
:mod:`rerank.bench.flood` floods the HTTP port with half-open connections."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Round:
    """One server's stop: seconds from SIGTERM to exit (None: it had not exited within the bound and was
    killed), its exit code, and what the clients saw."""

    exit_s: float | None
    returncode: int | None
    watches: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # outcome -> count
    stderr_tail: str = ""

    @property
    def hung(self) -> bool:
        return self.exit_s is None


class Served:
    """``rerank serve ARGS`` in a subprocess (``pin``: a CPU list for ``taskset -c``); waits for its
    'serving on' line and parses the addresses."""

    def __init__(self, args: Sequence[str], pin: str | None = None, env: dict[str, str] | None = None,
                 start_timeout: float = 120.0, nofile: int | None = None) -> None:  # fmt: skip
        argv = [sys.executable, "-m", "rerank.server", "serve", *args]
        if pin is not None:
            argv = ["taskset", "-c", pin, *argv]
        if nofile is not None:  # the server's file-descriptor limit
            argv = ["prlimit", f"--nofile={nofile}:{nofile}", *argv]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.errors.append), daemon=True).start()
        try:
            first = self.lines.get(timeout=start_timeout)
        except queue.Empty:
            self.kill()
            raise RuntimeError("the server did not start: " + self.stderr_tail()) from None
        if not first.startswith("rerank: serving on "):
            self.kill()
            raise RuntimeError(f"unexpected first line {first!r}: {self.stderr_tail()}")
        words = first.split()
        self.address = words[3]
        self.http = words[words.index("http") + 1] if "http" in words else None

    def open_fds(self) -> int:
        """File descriptors the server process holds now (Linux /proc)."""
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return 0

    @staticmethod
    def _read(stream, put) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            put(line)

    def stderr_tail(self, lines: int = 30) -> str:
        return "".join(self.errors[-lines:])

    def sigterm_and_wait(self, bound_s: float, signalled: threading.Event | None = None,
                         ) -> tuple[float | None, int | None]:  # fmt: skip
        """SIGTERM (then set ``signalled``), wait up to ``bound_s`` for the exit: (seconds to exit or None,
        exit code)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        if signalled is not None:
            signalled.set()
        try:
            code = self.proc.wait(bound_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None, None
        return time.monotonic() - t0, code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _churn_watches(address: str, stop: threading.Event, counts: list[int], hold_s: float, seed: int) -> None:
    """Open a Health/Watch stream, read its first answer, cancel it after 0..``hold_s`` seconds, again."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    rng = random.Random(seed)
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while not stop.is_set():
            stream = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
            try:
                next(stream)
                counts[0] += 1
                time.sleep(rng.uniform(0.0, hold_s))
            except (grpc.RpcError, StopIteration):
                time.sleep(0.01)  # the server stops: keep trying, as a client's health checker does
            finally:
                stream.cancel()


def health_churn_round(args: Sequence[str], *, threads: int = 16, hold_s: float = 0.2, signal_after_s: float = 1.5,
                       bound_s: float = 30.0, pin: str | None = None) -> Round:  # fmt: skip
    """Start ``rerank serve ARGS``, churn ``threads`` Health/Watch streams against it, SIGTERM it after
    ``signal_after_s`` and wait up to ``bound_s`` for it to exit."""
    served = Served(args, pin=pin)
    stop = threading.Event()
    counts = [0]
    workers = [
        threading.Thread(target=_churn_watches, args=(served.address, stop, counts, hold_s, i), daemon=True)
        for i in range(threads)
    ]
    exit_s, code = _sigterm_under_load(served, workers, stop, signal_after_s, bound_s, stop_at_signal=False)
    return Round(exit_s, code, watches=counts[0], stderr_tail=served.stderr_tail())


def _sigterm_under_load(served: Served, workers: list[threading.Thread], stop: threading.Event,
                        signal_after_s: float, bound_s: float, stop_at_signal: bool,
                        ) -> tuple[float | None, int | None]:  # fmt: skip
    """Start the client ``workers``, SIGTERM the server after ``signal_after_s``, wait up to ``bound_s`` for
    its exit, then stop and join the workers (the server is killed if still there). ``stop_at_signal``: the
    workers start no new request once the signal is sent (else they go on until the exit)."""
    try:
        for w in workers:
            w.start()
        time.sleep(signal_after_s)
        return served.sigterm_and_wait(bound_s, stop if stop_at_signal else None)
    finally:
        stop.set()
        served.kill()
        for w in workers:
            w.join(10)


def post_json(url: str, body: dict, timeout: float, headers: dict[str, str] | None = None,
              ) -> tuple[int, dict[str, str], str]:  # fmt: skip
    """POST JSON: (status, lower-cased response headers, body text); status 0 when the connection failed."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read().decode(errors="replace")
    except OSError:
        return 0, {}, ""


def loaded_sigterm_round(args: Sequence[str], *, clients: int = 8, docs: int = 40, signal_after_s: float = 2.0,
                         bound_s: float = 60.0, pin: str | None = None, seed: int = 0) -> Round:  # fmt: skip
    """Start ``rerank serve ARGS`` (with ``--http-port``), keep ``clients`` gRPC and HTTP requests of new texts
    in flight (long model calls), SIGTERM after ``signal_after_s``, wait up to ``bound_s`` for the exit.
    ``requests`` counts the outcomes: a gRPC status name, or ``http <status> <content type>`` (and
    ``http traceback`` when a body carries one)."""
    import grpc

    from ..client import RerankClient, RerankError, RetryPolicy

    served = Served(args, pin=pin)
    if served.http is None:
        served.kill()
        raise ValueError("give --http-port 0 in ARGS")
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    text = " ".join(["plants make food from sunlight water and carbon dioxide in green leaves"] * 12)

    def count(outcome: str) -> None:
        with lock:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    def grpc_client(i: int) -> None:
        with RerankClient(served.address, timeout=120, retry=RetryPolicy(attempts=1), health_service=None) as c:
            n = 0
            while not stop.is_set():
                n += 1
                candidates = [(f"d{j}", f"{seed} {i} {n} {j} {text}") for j in range(docs)]
                try:
                    c.rerank(f"query {seed} {i} {n}", candidates)
                    count("grpc OK")
                except RerankError as exc:
                    count(f"grpc {exc.code.name}")
                except grpc.RpcError:
                    count("grpc error")

    def http_client(i: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            body = {"query": f"http query {seed} {i} {n}",
                    "documents": [f"{seed} {i} {n} {j} {text}" for j in range(docs)]}  # fmt: skip
            status, headers, reply = post_json(f"http://{served.http}/v1/rerank", body, timeout=120)
            count(f"http {status} {headers.get('content-type', '').split(';')[0]}".rstrip())
            if "Traceback" in reply:
                count("http traceback")
            if status == 503 and "retry-after" not in headers:
                count("http 503 without Retry-After")

    workers = [
        threading.Thread(target=grpc_client if i % 2 == 0 else http_client, args=(i,), daemon=True)
        for i in range(clients)
    ]
    exit_s, code = _sigterm_under_load(served, workers, stop, signal_after_s, bound_s, stop_at_signal=True)
    return Round(exit_s, code, requests=dict(outcomes), stderr_tail=served.stderr_tail())


def store_args(store: str | Path, *extra: str) -> list[str]:
    """``rerank serve`` arguments for a loopback server on free ports over the model store ``store``."""
    level = os.environ.get("RERANK_BENCH_LOG", "WARNING")
    return ["--host", "127.0.0.1", "--port", "0", "--store", str(store), "--no-warmup", "--log-level", level, *extra]
