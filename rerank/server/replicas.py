"""Several ``rerank serve`` processes on one machine, and HAProxy in front of them (from ``deploy/haproxy``):
the loopback set-up of the replica tests and of ``bench/replicas_bench.py``, and a way to try it by hand.

Nothing here balances or routes: gRPC's round_robin (``RerankClient`` with several addresses) or HAProxy do.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVING = re.compile(r"rerank: serving on (\S+):(\d+)(?: metrics (\S+):(\d+))?(?: http (\S+):(\d+))?")
HAPROXY_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"


@dataclass
class Replica:
    """One ``rerank serve`` process (its own process group) and the port it bound."""

    process: subprocess.Popen
    port: int = 0
    metrics_port: int | None = None  # with --metrics-port
    http_port: int | None = None  # with --http-port
    lines: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def signal(self, sig: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.process.wait(timeout)


def start_replicas(
    n: int,
    args: Sequence[str] = (),
    *,
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
    launcher: Sequence[str] = (sys.executable, "-m", "rerank.cli"),
) -> list[Replica]:
    """Start ``n`` ``rerank serve --host 127.0.0.1 --port 0 ARGS`` processes at once (``launcher`` runs
    ``rerank``: this interpreter's, or e.g. another environment's ``bin/rerank``); return when each has
    printed its serving line (a replica that exits first raises ``RuntimeError`` with its output)."""
    command = [*launcher, "serve", "--host", "127.0.0.1", "--port", "0", *args]
    replicas = [
        Replica(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 env=env, start_new_session=True))
        for _ in range(n)
    ]
    try:
        for replica in replicas:
            _wait_serving(replica, time.monotonic() + timeout)
    except BaseException:
        for replica in replicas:
            replica.signal(signal.SIGKILL)
        raise
    return replicas


def _wait_serving(replica: Replica, deadline: float) -> None:
    assert replica.process.stdout is not None
    while time.monotonic() < deadline:
        line = replica.process.stdout.readline()
        if not line:
            raise RuntimeError("rerank serve exited before serving:\n" + "".join(replica.lines[-20:]))
        replica.lines.append(line)
        match = SERVING.search(line)
        if match:
            replica.port = int(match.group(2))
            replica.metrics_port = int(match.group(4)) if match.group(4) else None
            replica.http_port = int(match.group(6)) if match.group(6) else None
            _drain_output(replica)
            return
    raise RuntimeError("rerank serve did not start in time:\n" + "".join(replica.lines[-20:]))


def _drain_output(replica: Replica) -> None:
    """Keep reading the replica's output (so a full pipe never blocks it) into ``replica.lines``."""

    def pump() -> None:
        assert replica.process.stdout is not None
        for line in replica.process.stdout:
            replica.lines.append(line)

    threading.Thread(target=pump, daemon=True).start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render_haproxy_config(
    backends: Sequence[str], bind: str, template: Path = HAPROXY_CONFIG, check_ports: Sequence[int] | None = None,
) -> str:
    """The deployed HAProxy configuration with its DNS-discovered servers (``server-template``) replaced by
    fixed ``server`` lines for ``backends`` (checked on ``check_ports``, each replica's HTTP port, where given)
    and its listener moved to ``bind``; every other setting (checks, retries, timeouts) is the deployed one."""
    out = []
    for line in template.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("bind "):
            line = re.sub(r"bind \S+", f"bind {bind}", line, count=1)
        if stripped.startswith("server-template "):
            options = stripped.split()[4:]
            options = [o for o in options if o not in ("resolvers", "kube", "init-addr", "none", "last,libc,none")]
            indent = line[: len(line) - len(line.lstrip())]
            for i, backend in enumerate(backends):
                mine = " ".join(options)
                if check_ports is not None:
                    mine = re.sub(r"\bport \d+", f"port {check_ports[i]}", mine)
                out.append(f"{indent}server r{i} {backend} {mine}")
            continue
        if stripped.startswith(("resolvers ", "nameserver ", "parse-resolv-conf", "hold valid", "accepted_payload")):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class Proxy:
    process: subprocess.Popen
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_haproxy(
    backends: Sequence[str], folder: Path, timeout: float = 20.0, check_ports: Sequence[int] | None = None,
) -> Proxy:
    """HAProxy (``haproxy`` on PATH: ``deploy/haproxy/install.sh``) on a free loopback port in front of
    ``backends`` (their HTTP ``/ready`` on ``check_ports``), with the deployed configuration; returns once it
    accepts connections. Its log (one line per call and per check change) is ``folder/haproxy.log``."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        raise RuntimeError("haproxy is not installed: run deploy/haproxy/install.sh")
    port = free_port()
    config = folder / "haproxy.cfg"
    config.write_text(render_haproxy_config(backends, f"127.0.0.1:{port}", check_ports=check_ports))
    check = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy refused the configuration: {check.stderr.strip()}")
    log = open(folder / "haproxy.log", "w")  # noqa: SIM115 - the process keeps it
    process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited: {(folder / 'haproxy.log').read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return Proxy(process, port)
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("haproxy did not start listening in time")


@dataclass
class Outcome:
    """One call of :func:`send_concurrently`: which request, how long, the reply or the error."""

    request: int
    seconds: float
    reply: object = None
    error: BaseException | None = None


def send_concurrently(
    make_client: Callable[[], Any],
    requests: Sequence[Callable[[Any], object]],
    *,
    clients: int = 8,
    per_client: int = 10,
    when: int | None = None,
    action: Callable[[], None] | None = None,
) -> list[Outcome]:
    """``clients`` threads, each with its own client from ``make_client``, each sending ``per_client``
    requests (request i is ``requests[i % len]``, called with the client); ``action`` runs once, in its own
    thread, when ``when`` calls have finished (e.g. kill a replica mid-run). Every outcome is returned."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    fired = threading.Event()
    helpers: list[threading.Thread] = []

    def record(outcome: Outcome) -> None:
        with lock:
            outcomes.append(outcome)
            due = action is not None and when is not None and len(outcomes) >= when and not fired.is_set()
            if due:
                fired.set()
        if due:
            helper = threading.Thread(target=action)
            helper.start()
            helpers.append(helper)

    def worker(index: int) -> None:
        client = make_client()
        try:
            for k in range(per_client):
                i = (index * per_client + k) % len(requests)
                t0 = time.perf_counter()
                try:
                    reply = requests[i](client)
                    record(Outcome(i, time.perf_counter() - t0, reply))
                except Exception as exc:
                    record(Outcome(i, time.perf_counter() - t0, error=exc))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for helper in helpers:
        helper.join()
    return outcomes
