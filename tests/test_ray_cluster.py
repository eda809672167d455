"""A real two-node Ray cluster on this machine, joined as a user joins one (docs/scaling.md, "A Ray cluster"):
a head and a second node started by ``ray start`` as separate processes on test-chosen ports, then
``rerank rank``, ``rerank bench budgets`` and ``rerank index build`` with ``--engine ray --address``. Their
actors run on both nodes and their outputs equal the local engine's byte for byte; a node stopped mid-run
loses nothing. Everything stays on loopback: Ray 2.60 on Linux replaces 127.0.0.1 (and ``localhost``) by the
machine's outward address, so the nodes take 127.0.0.2 and 127.0.0.3 (all of 127.0.0.0/8 is loopback) and
the test checks that no Ray process of this cluster holds a connection to any other address.

Clean-up never runs ``ray stop`` (it stops every Ray on the machine, other users' included): it ends the
processes whose command line names this cluster's own temp folder, SIGTERM then SIGKILL, bounded.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the 'distributed' extra (Ray) is not installed")
psutil = pytest.importorskip("psutil")

HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"
RAY = str(Path(sys.executable).with_name("ray"))
DEPTH = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    return ["--dashboard-agent-listen-port", str(_free_port()), "--dashboard-agent-grpc-port", str(_free_port()),
            "--runtime-env-agent-port", str(_free_port()), "--metrics-export-port", str(_free_port())]


def _cluster_processes(temp: str) -> list[psutil.Process]:
    """This cluster's processes: every one whose command line names its temp folder (Ray passes it, or the
    session folder inside it, to each process it starts)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(temp in part for part in proc.info["cmdline"] or []):
                found.append(proc)
    return found


def _end(processes: list[psutil.Process], timeout: float = 5) -> None:
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout)


def _raylet(temp: str, ip: str) -> psutil.Process:
    for proc in _cluster_processes(temp):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.cmdline())
            if "raylet" in proc.name() and f"--node_ip_address={ip}" in cmd:
                return proc
    raise AssertionError(f"no raylet of node {ip} found")


@pytest.fixture(scope="module")
def cluster(rerank_home: Path) -> Iterator[dict]:
    temp = tempfile.mkdtemp(prefix="rrray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RERANK_HOME": str(rerank_home),
           "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    common = ["--temp-dir", temp, "--object-store-memory", str(128 * 1024 * 1024), "--disable-usage-stats"]
    starts = [
        [RAY, "start", "--head", "--node-ip-address", HEAD_IP, "--port", str(port), "--num-cpus", "2",
         "--include-dashboard", "false", "--ray-client-server-port", str(_free_port()), *common, *_node_ports()],
        [RAY, "start", "--address", f"{HEAD_IP}:{port}", "--node-ip-address", NODE_IP, "--num-cpus", "1",
         *common, *_node_ports()],
    ]
    try:
        for argv in starts:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stdout + done.stderr
        node = [RAY, "start", "--address", f"{HEAD_IP}:{port}", "--node-ip-address", NODE_IP, "--num-cpus", "1",
                *common]  # + fresh _node_ports(): how a test starts the second node again
        yield {"address": f"{HEAD_IP}:{port}", "env": env, "temp": temp, "node": node}
    finally:
        _end(_cluster_processes(temp))
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def dl19(data_dir: Path, tmp_path_factory) -> dict:
    """Twelve DL19 queries (the BM25 run cut to them)."""
    from rerank.evaluation import read_run, write_run

    dl = data_dir / "trec-dl-2019-passage"
    run = read_run(dl / "run.bm25.top100.trec")
    small = tmp_path_factory.mktemp("dl19-cluster") / "small.trec"
    write_run({q: run[q] for q in sorted(run)[:12]}, small, tag="bm25")
    return {"dir": dl, "run": small}


def _rerank(cluster: dict, *args: str, engine: list[str] | None = None) -> subprocess.Popen:
    engine = ["--engine", "ray", "--address", cluster["address"]] if engine is None else engine
    return subprocess.Popen([sys.executable, "-m", "rerank.cli", *args, *engine], env=cluster["env"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, out + err
    return err


def _wait_for_a_finished_query(proc: subprocess.Popen, progress: Path, within_s: float = 240) -> None:
    """Until ``progress`` records a finished query (the run still going), at most ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not (progress.exists() and progress.read_text().count("\n") >= 2):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"no query finished within {within_s:g} s"
        time.sleep(0.1)


def _rank_args(dl19: dict, out: Path) -> list[str]:
    dl = dl19["dir"]
    return ["rank", "--run", str(dl19["run"]), "--corpus", str(dl / "corpus.jsonl"), "--queries",
            str(dl / "queries.tsv"), "--depth", str(DEPTH), "--output", str(out), "--quiet"]


def _both_nodes(err: str) -> None:
    assert "rerank: note: 2 Ray workers on 2 nodes (127.0.0.2: 1, 127.0.0.3: 1)" in err, err


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def _only_loopback(cluster: dict) -> None:
    """No process of this cluster holds a TCP connection to a non-loopback address."""
    checked = 0
    for proc in _cluster_processes(cluster["temp"]):
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="inet"):
                if conn.raddr:
                    checked += 1
                    assert _loopback(conn.raddr.ip), (proc.name(), conn)
    assert checked > 0


@pytest.fixture(scope="module")
def local_rank(cluster, dl19, tmp_path_factory) -> dict:
    """``rerank rank`` with the local engine: the file every Ray run must equal, and its wall time."""
    out = tmp_path_factory.mktemp("local-rank") / "local.trec"
    start = time.monotonic()
    _finish(_rerank(cluster, *_rank_args(dl19, out), engine=[]))
    return {"bytes": out.read_bytes(), "seconds": time.monotonic() - start}


def test_rank_on_two_nodes_writes_the_local_file(cluster, dl19, local_rank, tmp_path):
    start = time.monotonic()
    err = _finish(_rerank(cluster, *_rank_args(dl19, tmp_path / "ray.trec"), "--workers", "2"))
    seconds = time.monotonic() - start
    _both_nodes(err)
    assert (tmp_path / "ray.trec").read_bytes() == local_rank["bytes"]
    _only_loopback(cluster)
    digest = hashlib.sha256(local_rank["bytes"]).hexdigest()[:16]
    print(f"\ntwo-node rank: local {local_rank['seconds']:.1f} s, Ray {seconds:.1f} s (each a new process, Ray's "
          f"join and actor start included), both files sha256 {digest}...")


def test_bench_budgets_and_index_build_on_two_nodes_equal_local(cluster, data_dir, tmp_path):
    dl = data_dir / "trec-dl-2019-passage"
    bench = ["bench", "budgets", "--dataset", str(dl), "--model", "minilm", "--depth", "6", "--samplers",
             "all,random", "--aggregators", "bt", "--calibrations", "symmetric", "--budgets", "0.2,1.0",
             "--repeats", "1", "--max-queries", "3", "--quiet"]
    lines = (data_dir / "cranfield" / "corpus.jsonl").read_text().splitlines(keepends=True)[:60]
    (tmp_path / "corpus.jsonl").write_text("".join(lines))
    index = ["index", "build", "--corpus", str(tmp_path / "corpus.jsonl"), "--model", "minilm", "--skip-empty",
             "--batch-size", "8"]
    for name, engine in (("local", []), ("ray", None)):
        extra = ["--workers", "2"] if engine is None else []
        err = _finish(_rerank(cluster, *bench, "--out", str(tmp_path / f"bench-{name}"), "--cache",
                              str(tmp_path / f"cache-{name}"), *extra, engine=engine))
        if engine is None:
            _both_nodes(err)
        err = _finish(_rerank(cluster, *index, "--out", str(tmp_path / f"index-{name}"), *extra, engine=engine))
        if engine is None:
            _both_nodes(err)
    results = [(tmp_path / f"bench-{name}" / "results.csv").read_bytes() for name in ("local", "ray")]
    assert results[0] == results[1]
    caches = [sorted((tmp_path / c).rglob("*.npz")) for c in ("cache-local", "cache-ray")]
    assert len(caches[0]) == len(caches[1]) == 3
    for a, b in zip(*caches, strict=True):
        assert a.name == b.name and a.read_bytes() == b.read_bytes()
    for part in ("index.faiss", "docstore.sqlite"):
        local, ray_ = (tmp_path / f"index-{n}" / part for n in ("local", "ray"))
        if local.exists():
            assert local.read_bytes() == ray_.read_bytes(), part
    _only_loopback(cluster)


def test_a_node_stopped_mid_run_loses_nothing(cluster, dl19, local_rank, tmp_path):
    """SIGKILL the second node's raylet (its workers die with it) after the first query is written: Ray
    restarts that actor on the head, the pool sends its queries again; the file equals the local run's."""
    out = tmp_path / "ray.trec"
    progress = out.with_name(out.name + ".progress")
    proc = _rerank(cluster, *_rank_args(dl19, out), "--workers", "2")
    try:
        _wait_for_a_finished_query(proc, progress)
        done_at_kill = progress.read_text().count("\n") - 1
        _raylet(cluster["temp"], NODE_IP).send_signal(signal.SIGKILL)
        err = _finish(proc, timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert done_at_kill < 12, "the run ended before the node was stopped; nothing was tested"
    _both_nodes(err)
    assert "ranked 12 queries (12 done" in err
    assert out.read_bytes() == local_rank["bytes"]  # nothing lost, nothing twice, in order
    records = [json.loads(line) for line in progress.read_text().splitlines()[1:]]
    assert len({r["qid"] for r in records}) == len(records) == 12


def test_an_address_nobody_listens_on_is_one_line_naming_what_to_check(cluster, tmp_path):
    port = _free_port()
    proc = _rerank(cluster, "rank", "--input", "-", "--output", str(tmp_path / "o.jsonl"),
                   engine=["--engine", "ray", "--address", f"{HEAD_IP}:{port}"])
    row = {"qid": "1", "query": "q", "candidates": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]}
    start = time.monotonic()
    _, err = proc.communicate(json.dumps(row) + "\n", timeout=120)
    assert proc.returncode == 1 and time.monotonic() - start < 60
    (line,) = [x for x in err.splitlines() if x.startswith("rerank: error")]
    assert f"cannot join the Ray cluster at {HEAD_IP}:{port}: Connection refused" in line
    assert "check the address" in line and "RAY_AUTH_MODE" in line and "--node-ip-address" in line
    assert not (tmp_path / "o.jsonl").exists()


def test_a_driver_with_another_auth_mode_is_one_line_naming_what_to_check(cluster, tmp_path):
    """The cluster runs with RAY_AUTH_MODE=disabled; a driver with token auth joins, but its actors never
    start: one line, no traceback, no output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rerank.cli", "rank", "--input", "-", "--output", str(tmp_path / "o.jsonl"),
         "--engine", "ray", "--address", cluster["address"]],
        env={**cluster["env"], "RAY_AUTH_MODE": "token"}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    row = {"qid": "1", "query": "q", "candidates": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]}
    try:
        _, err = proc.communicate(json.dumps(row) + "\n", timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("rerank: error")]
    assert f"cannot join the Ray cluster at {cluster['address']}: its Ray workers did not start" in line
    assert "RAY_AUTH_MODE" in line
    assert not (tmp_path / "o.jsonl").exists()


def test_more_workers_than_the_cluster_has_cpus_is_refused_at_once(cluster, tmp_path):
    """Three CPUs in the cluster (two once the node test stopped a node): a ninth actor could never be placed
    (it would wait forever)."""
    proc = _rerank(cluster, "rank", "--input", "-", "--output", str(tmp_path / "o.jsonl"), "--workers", "9")
    row = {"qid": "1", "query": "q", "candidates": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]}
    _, err = proc.communicate(json.dumps(row) + "\n", timeout=180)
    assert proc.returncode == 1, err
    lines = [x for x in err.splitlines() if x.startswith("rerank: error")]
    assert len(lines) == 1, err
    (line,) = lines
    assert re.fullmatch(r"rerank: error: --workers 9 needs 9 CPUs; the Ray cluster has [23]", line), line
    assert not (tmp_path / "o.jsonl").exists()


def test_a_lost_node_whose_worker_cannot_start_again_is_an_error_not_a_wait(cluster, dl19, tmp_path):
    """3 workers on 3 CPUs (2 on the head, 1 on the second node); SIGKILL the second node: its worker waits for
    a CPU that never comes. The run ends with one line naming the CPUs and what to do (after
    RERANK_RAY_PLACEMENT_WAIT_S, 5 s here), keeps the finished queries, and a rerun with 2 workers resumes to
    every query once (all 43 DL19 queries at depth 30, so the run outlasts the node's loss)."""
    with contextlib.suppress(AssertionError):
        _raylet(cluster["temp"], NODE_IP).send_signal(signal.SIGKILL)  # an earlier test's node, if any
    time.sleep(1)
    started = subprocess.run([*cluster["node"], *_node_ports()], env=cluster["env"], capture_output=True,
                             text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    dl = dl19["dir"]
    args = ["rank", "--run", str(dl / "run.bm25.top100.trec"), "--corpus", str(dl / "corpus.jsonl"), "--queries",
            str(dl / "queries.tsv"), "--depth", "30", "--output", str(tmp_path / "ray.trec"), "--quiet"]
    out = tmp_path / "ray.trec"
    progress = out.with_name(out.name + ".progress")
    env = {**cluster["env"], "RERANK_RAY_PLACEMENT_WAIT_S": "5"}
    engine = ["--engine", "ray", "--address", cluster["address"]]
    proc = subprocess.Popen([sys.executable, "-m", "rerank.cli", *args, "--workers", "3", *engine],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_a_finished_query(proc, progress)
        _raylet(cluster["temp"], NODE_IP).send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _, err = proc.communicate(timeout=180)
        waited = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    done = progress.read_text().count("\n") - 1
    if proc.returncode == 0:  # every query finished before the node's loss was seen: nothing was tested
        pytest.fail(f"the run ended before the lost worker mattered ({done} done); nothing was tested")
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 1 and re.fullmatch(
        r"rerank: error: the Ray cluster has 2 CPUs for 3 workers \(a node left \d+ s ago\) and a lost worker "
        r"cannot start again: add a node, or run again with --workers 2 \(the output resumes\)", last), err
    assert waited < 120, waited
    resumed = _finish(_rerank(cluster, *args, "--workers", "2"))
    assert f"rerank: ranked {43 - done} queries (43 done" in resumed, resumed
    records = [json.loads(line) for line in progress.read_text().splitlines()[1:]]
    assert len({r["qid"] for r in records}) == len(records) == 43  # nothing lost, nothing twice
