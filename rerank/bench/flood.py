"""A bounded flood of half-open connections against a ``rerank serve`` subprocess's HTTP port: ``sockets``
connections that send part of a request's headers and nothing more, opened while gRPC and HTTP clients keep
sending real requests. Reports the server's file descriptors, the clients' success rates during the flood and
how long the server took to drop the half-open connections. Used by ``tests/test_server_flood.py`` and
``bench/server_stress_bench.py``."""

from __future__ import annotations

import resource
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .shutdown import Served, post_json

PARTIAL = b"POST /v1/rerank HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"  # no blank line


@dataclass
class Flood:
    sockets: int  # connections the flood tried to open
    opened: int  # connected (the rest were refused or timed out)
    server_fds_before: int
    server_fds_max: int  # sampled every 50 ms during the flood
    dropped: int  # half-open connections the server closed within the watch
    drop_p50_s: float | None  # seconds from connecting to the server closing it
    drop_max_s: float | None
    grpc_ok: int
    grpc_total: int
    http_ok: int
    http_total: int
    failures: dict[str, int]  # what the failed client requests got
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def _raise_own_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def flood_round(args: Sequence[str], *, sockets: int = 3000, watch_s: float = 20.0, nofile: int | None = 1024,
                clients: int = 2) -> Flood:  # fmt: skip
    """Start ``rerank serve ARGS`` (give ``--http-port 0``) with ``nofile`` file descriptors, flood it, watch
    for ``watch_s`` seconds at most (until every half-open connection is dropped), stop it."""
    from ..client import RerankClient, RerankError, RetryPolicy

    served = Served(args, nofile=nofile)
    if served.http is None:
        served.kill()
        raise ValueError("give --http-port 0 in ARGS")
    _raise_own_fd_limit(sockets + 256)
    stop = threading.Event()
    counts = {"grpc_ok": 0, "grpc_total": 0, "http_ok": 0, "http_total": 0}
    failures: dict[str, int] = {}
    lock = threading.Lock()

    def tally(face: str, ok: bool, why: str = "") -> None:
        with lock:
            counts[f"{face}_total"] += 1
            counts[f"{face}_ok"] += int(ok)
            if not ok:
                failures[f"{face} {why}"] = failures.get(f"{face} {why}", 0) + 1

    def grpc_client(i: int) -> None:
        with RerankClient(served.address, timeout=5, retry=RetryPolicy(attempts=1), health_service=None) as c:
            while not stop.is_set():
                try:
                    c.rerank(f"grpc {i}", [("a", "plants make food"), ("b", "the sun is a star")])
                    tally("grpc", True)
                except RerankError as exc:
                    tally("grpc", False, exc.code.name)
                time.sleep(0.05)

    def http_client(i: int) -> None:
        while not stop.is_set():
            status, _, _ = post_json(f"http://{served.http}/v1/rerank",
                                     {"query": f"http {i}", "documents": ["plants make food", "the sun"]},
                                     timeout=5)  # fmt: skip
            tally("http", status == 200, str(status))
            time.sleep(0.05)

    workers = [threading.Thread(target=f, args=(i,), daemon=True) for i in range(clients)
               for f in (grpc_client, http_client)]  # fmt: skip
    host, port = served.http.rsplit(":", 1)
    fds_before = served.open_fds()
    selector = selectors.DefaultSelector()
    opened_at: dict[socket.socket, float] = {}
    drops: list[float] = []
    fds_max = fds_before
    t0 = time.monotonic()

    def poll(timeout: float) -> None:
        """Note the half-open connections the server closed (or answered 408)."""
        for key, _ in selector.select(timeout=timeout):
            s = key.fileobj
            try:
                data = s.recv(4096)  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 503"):
                drops.append(time.monotonic() - opened_at[s])  # type: ignore[index]
                selector.unregister(s)

    try:
        for w in workers:
            w.start()
        for _ in range(sockets):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(1.0)
            try:
                s.connect((host, int(port)))
                s.sendall(PARTIAL)
            except OSError:
                s.close()
                continue
            s.setblocking(False)
            opened_at[s] = time.monotonic()
            selector.register(s, selectors.EVENT_READ)
            if len(opened_at) % 50 == 0:
                poll(0)
                fds_max = max(fds_max, served.open_fds())
        end = time.monotonic() + watch_s
        while len(drops) < len(opened_at) and time.monotonic() < end:
            poll(0.05)
            fds_max = max(fds_max, served.open_fds())
        seconds = time.monotonic() - t0
    finally:
        stop.set()
        for w in workers:
            w.join(10)
        for s in opened_at:
            s.close()
        selector.close()
        served.kill()
    return Flood(
        sockets=sockets,
        opened=len(opened_at),
        server_fds_before=fds_before,
        server_fds_max=fds_max,
        dropped=len(drops),
        drop_p50_s=statistics.median(drops) if drops else None,
        drop_max_s=max(drops) if drops else None,
        seconds=seconds,
        failures=failures,
        **counts,
    )
