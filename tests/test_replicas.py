"""Three ``rerank serve`` replicas on loopback (real MiniLM): gRPC's own round_robin with client-side health
checking and retries, and HAProxy (deploy/haproxy/haproxy.cfg) in front; one replica SIGKILLed while 8
clients send: no failed call, every answer right; a replica given SIGTERM drains."""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from rerank.client import RerankClient, channel_target, service_config
from rerank.evaluation import read_corpus, read_queries, read_run
from rerank.server.replicas import Proxy, Replica, send_concurrently, start_haproxy, start_replicas

SERVE_ARGS = ["--model", "minilm", "--no-warmup", "--drain", "2", "--grace", "90", "--metrics-port", "0",
              "--http-port", "0"]  # HTTP: HAProxy checks each replica's GET /ready
CLIENTS, PER_CLIENT = 8, 10


@pytest.fixture(scope="module")
def requests(data_dir: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """Eight DL19 queries with their BM25 top 8 (real texts)."""
    dl = data_dir / "trec-dl-2019-passage"
    run, queries, corpus = read_run(dl / "run.bm25.top100.trec"), read_queries(dl / "queries.tsv"), read_corpus(
        dl / "corpus.jsonl")
    out = []
    for qid in sorted(run)[:8]:
        top = sorted(run[qid], key=lambda d: -run[qid][d])[:8]
        out.append((queries[qid], [(d, corpus[d]) for d in top]))
    return out


class Pool:
    """Three replicas; a test that ends one starts a replacement (:meth:`refill`)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.replicas: list[Replica] = start_replicas(3, SERVE_ARGS, env=env)

    def refill(self) -> None:
        self.replicas = [r for r in self.replicas if r.process.poll() is None]
        if len(self.replicas) < 3:
            self.replicas += start_replicas(3 - len(self.replicas), SERVE_ARGS, env=self.env)

    @property
    def addresses(self) -> list[str]:
        return [r.address for r in self.replicas]

    def proxy(self, folder: Path) -> Proxy:
        return start_haproxy(self.addresses, folder, check_ports=[r.http_port for r in self.replicas])


@pytest.fixture(scope="module")
def pool(rerank_home: Path):
    p = Pool({**os.environ, "RERANK_HOME": str(rerank_home)})
    yield p
    for r in p.replicas:
        r.stop(10)


@pytest.fixture(scope="module")
def expected(pool, requests) -> list[list[tuple[str, float]]]:
    """Each request's answer from one replica alone (MiniLM on CPU is deterministic)."""
    with RerankClient(pool.addresses[0]) as client:
        return [_answer(client.rerank(q, c)) for q, c in requests]


def _answer(reply) -> list[tuple[str, float]]:
    return [(r.id, round(r.score, 6)) for r in reply.results]


def _calls(requests):
    return [lambda client, q=q, c=c: client.rerank(q, c, timeout=120) for q, c in requests]


def _check(outcomes, expected) -> None:
    errors = [o.error for o in outcomes if o.error is not None]
    assert not errors, f"{len(errors)} failed calls, first: {errors[0]!r}"
    assert len(outcomes) == CLIENTS * PER_CLIENT
    for o in outcomes:
        assert _answer(o.reply) == expected[o.request]


def test_channel_target_and_service_config() -> None:
    assert channel_target("dns:///rerank-headless:50051") == "dns:///rerank-headless:50051"
    assert channel_target(["127.0.0.1:1", "localhost:2"]) in ("ipv4:127.0.0.1:1,127.0.0.1:2",)
    assert channel_target(["[::1]:5"]) == "ipv6:[::1]:5"
    with pytest.raises(ValueError, match="not host:port"):
        channel_target(["127.0.0.1"])
    config = service_config()
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["healthCheckConfig"] == {"serviceName": "rerank.v1.Reranker"}
    assert config["methodConfig"][0]["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


def test_client_side_balancing_survives_a_replica_killed_mid_run(pool, requests, expected) -> None:
    victim = pool.replicas[2]
    outcomes = send_concurrently(lambda: RerankClient(pool.addresses), _calls(requests), clients=CLIENTS,
                                 per_client=PER_CLIENT, when=12, action=lambda: victim.signal(signal.SIGKILL))
    assert victim.process.wait(10) == -signal.SIGKILL
    _check(outcomes, expected)
    pool.refill()


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy missing: run deploy/haproxy/install.sh")
def test_haproxy_in_front_survives_a_replica_killed_mid_run(pool, requests, expected, tmp_path) -> None:
    proxy = pool.proxy(tmp_path)
    try:
        victim = pool.replicas[0]
        # the proxy is one address: the client neither balances nor health-checks; HAProxy does
        outcomes = send_concurrently(lambda: RerankClient(proxy.address, health_service=None), _calls(requests),
                                     clients=CLIENTS, per_client=PER_CLIENT, when=12,
                                     action=lambda: victim.signal(signal.SIGKILL))
        assert victim.process.wait(10) == -signal.SIGKILL
        _check(outcomes, expected)
    finally:
        proxy.stop()
    pool.refill()


LOG_TIME = re.compile(r"^<\d+>1 (\S+) ")  # rfc5424: the time HAProxy wrote the line, in microseconds
ACCEPTED = re.compile(r"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3})\] grpc rerank/(\S+) ")  # httplog


def _routed(log: str) -> list[tuple[float, str]]:
    """(accept time, server) of each call in an HAProxy log (option httplog)."""
    return [(datetime.strptime(when, "%d/%b/%Y:%H:%M:%S.%f").astimezone().timestamp(), server)
            for when, server in ACCEPTED.findall(log)]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy missing: run deploy/haproxy/install.sh")
def test_haproxy_takes_a_draining_replica_out_before_it_stops_answering(pool, requests, expected, tmp_path):
    """SIGTERM one of 3 replicas while 8 clients call through HAProxy: its GET /ready turns 503 at once, the
    proxy's check takes it out (a Layer 7 503, so it still answered), no call reaches it after that, and
    no call fails."""
    proxy = pool.proxy(tmp_path)
    victim, index = pool.replicas[1], 1
    try:
        time.sleep(1.0)  # every replica's check has passed
        outcomes = send_concurrently(lambda: RerankClient(proxy.address, health_service=None), _calls(requests),
                                     clients=CLIENTS, per_client=PER_CLIENT, when=12,
                                     action=lambda: victim.signal(signal.SIGTERM))
        assert victim.process.wait(120) == 0
    finally:
        proxy.stop()
    log = (tmp_path / "haproxy.log").read_text()
    (down,) = [line for line in log.splitlines() if f"Server rerank/r{index} is DOWN" in line and "<" in line[:2]]
    assert "Layer7 wrong status" in down and "code: 503" in down, down  # turned down while it still answered
    down_at = datetime.fromisoformat(LOG_TIME.match(down).group(1)).timestamp()
    routed = _routed(log)
    assert len(routed) >= CLIENTS * PER_CLIENT
    late = [when for when, server in routed if server == f"r{index}" and when > down_at + 0.001]  # ms rounding
    print(f"\nHAProxy drain: {len(outcomes)} calls, {sum(o.error is not None for o in outcomes)} failed, "
          f"{sum(s == f'r{index}' for _, s in routed)} to the draining replica, {len(late)} after its check "
          f"went down")
    assert not late, f"{len(late)} calls reached r{index} after its check went down"
    _check(outcomes, expected)
    pool.refill()


def _in_flight(replica: Replica) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{replica.metrics_port}/metrics", timeout=5).read().decode()
    return next(float(x.split()[1]) for x in text.splitlines() if x.startswith("rerank_inflight_requests "))


def test_sigterm_drains_not_serving_first_in_flight_finished(pool, requests, expected) -> None:
    victim = pool.replicas[1]
    query, cands = requests[0]
    big = [(f"{d}-{i}", f"{text} ({i})") for i in range(30) for d, text in cands]  # 240 new texts: seconds
    direct = RerankClient(victim.address, health_service=None)
    result: dict = {}

    def in_flight() -> None:
        try:
            result["reply"] = direct.rerank(query, big, timeout=120)
            result["at"] = time.monotonic()
        except Exception as exc:
            result["error"] = exc

    caller = threading.Thread(target=in_flight)
    caller.start()
    deadline = time.monotonic() + 60
    while _in_flight(victim) < 1:  # the call has reached the replica (no other traffic yet)
        assert time.monotonic() < deadline and caller.is_alive(), result
        time.sleep(0.05)
    statuses: list[str] = []

    def watch_health() -> None:
        probe = RerankClient(victim.address, health_service=None)
        while victim.process.poll() is None:
            try:
                statuses.append(probe.health("rerank.v1.Reranker", timeout=1.0))
            except Exception:
                statuses.append("DOWN")
            time.sleep(0.05)
        probe.close()

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    deadline = time.monotonic() + 30
    while not statuses:  # SERVING seen before the signal
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # SIGTERM while the call is in flight (sent at once, not after other traffic: on a quiet machine the call
    # can end within a second), then 8 balancing clients send through the drain: the draining replica is
    # left out, nothing fails
    sent = [time.monotonic()]
    victim.signal(signal.SIGTERM)
    outcomes = send_concurrently(lambda: RerankClient(pool.addresses), _calls(requests), clients=CLIENTS,
                                 per_client=PER_CLIENT)
    caller.join(200)
    watcher.join(60)
    direct.close()
    assert victim.process.wait(120) == 0
    assert "error" not in result, result.get("error")
    assert len(result["reply"].results) == len(big)  # the in-flight call finished, whole, after the SIGTERM
    assert result["at"] > sent[0]
    assert statuses[0] == "SERVING" and "NOT_SERVING" in statuses
    first_not_serving = statuses.index("NOT_SERVING")
    assert "DOWN" not in statuses[:first_not_serving]  # NOT_SERVING came before the replica stopped answering
    assert any("stopped" in line for line in victim.lines)
    _check(outcomes, expected)
    pool.refill()


def test_async_client_balances_over_the_replicas(pool, requests, expected) -> None:
    import asyncio

    from rerank.client import AsyncRerankClient

    async def main() -> list:
        async with AsyncRerankClient(pool.addresses) as client:
            assert client.target.startswith("ipv4:") and client.target.count(",") == 2
            return await asyncio.gather(*(client.rerank(q, c, timeout=120) for q, c in requests))

    replies = asyncio.run(main())
    assert [_answer(r) for r in replies] == expected
