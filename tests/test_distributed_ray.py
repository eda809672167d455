"""``--engine ray`` on a real local Ray (2 workers, small object store): rank, bench budgets and index build
give what the local engine gives; an interrupted driver resumes; a worker killed mid-run is restarted by Ray
and its query retried."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the 'distributed' extra (Ray) is not installed")

from rerank.bench.budgets import PreferenceScorer, run_budget_bench  # noqa: E402
from rerank.distributed import LOCAL_NODE_IP, RayOptions, RayPool, ray_mapper  # noqa: E402
from rerank.evaluation import read_corpus, read_queries, read_run  # noqa: E402
from rerank.offline import QueryRanker, ResumableOutput, qid_key, rank_jobs, trec_jobs  # noqa: E402
from rerank.pipeline import RankOptions  # noqa: E402
from rerank.retrieval.build import TextEmbedder  # noqa: E402

SETUP = {"mode": "test"}  # the set-up a ResumableOutput records with its progress

DEPTH = 8
WORKERS = RayOptions(workers=2)


@pytest.fixture(scope="module")
def dl19(data_dir: Path, tmp_path_factory) -> dict:
    """Six DL19 queries (TREC run cut to them) and the local engine's output on their top 8."""
    dl = data_dir / "trec-dl-2019-passage"
    run = read_run(dl / "run.bm25.top100.trec")
    qids = sorted(run)[:6]
    folder = tmp_path_factory.mktemp("dl19-ray")
    small = _cut_run(run, qids, folder / "small.trec")
    return {"dir": dl, "run": small, "qids": qids, "folder": folder,
            "queries": read_queries(dl / "queries.tsv"), "corpus": read_corpus(dl / "corpus.jsonl")}


#: The killed-driver test needs a run with a middle: 6 queries of 8 passages can all finish between two looks at
#: the progress file (seen once: all 6 done before the kill), 30 of 40 take seconds after the first.
LONG_QUERIES, LONG_DEPTH = 30, 40


@pytest.fixture(scope="module")
def dl19_long(dl19: dict) -> dict:
    """30 DL19 queries (the TREC run cut to them), ranked at depth 40 in the killed-driver test."""
    run = read_run(dl19["dir"] / "run.bm25.top100.trec")
    qids = sorted(run)[:LONG_QUERIES]
    long_run = _cut_run(run, qids, dl19["folder"] / "long.trec")
    return {**dl19, "run": long_run, "qids": qids, "depth": LONG_DEPTH}


def _cut_run(run: dict, qids: list[str], path: Path) -> Path:
    """The TREC run cut to ``qids``, written to ``path`` (ranks by score, as BM25 gave them)."""
    path.write_text("".join(f"{q} Q0 {d} {i} {s} bm25\n" for q in qids
                            for i, (d, s) in enumerate(sorted(run[q].items(), key=lambda x: -x[1]), start=1)))
    return path


def _jobs(dl19: dict) -> list:
    run = read_run(dl19["run"])
    return list(trec_jobs(sorted(run, key=qid_key), run, dl19["queries"], dl19["corpus"],
                          dl19.get("depth", DEPTH)))  # as the CLI


def _ray_rank():
    return ray_mapper(QueryRanker(("minilm",), RankOptions()), "rank", WORKERS)


@pytest.fixture(scope="module")
def local_run(dl19: dict, minilm) -> str:
    """The local engine's file: a Ray run writes the same bytes (queries in input order)."""
    out = ResumableOutput(dl19["folder"] / "local.trec", SETUP)
    try:
        rank_jobs(iter(_jobs(dl19)), [minilm], RankOptions(), out, trec_tag="rerank", total=6,
                  progress_stream=StringIO())
    finally:
        out.close()
    return (dl19["folder"] / "local.trec").read_text()


def _cli_rank(dl19: dict, out: Path, home: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "rerank.cli", "rank", "--run", str(dl19["run"]), "--corpus",
            str(dl19["dir"] / "corpus.jsonl"), "--queries", str(dl19["dir"] / "queries.tsv"), "--depth",
            str(dl19.get("depth", DEPTH)),
            "--output", str(out), "--engine", "ray", "--workers", "2", *extra]
    return subprocess.Popen(args, env={**os.environ, "RERANK_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_killed_driver_resumes_nothing_lost_nothing_twice(dl19_long, minilm, rerank_home, tmp_path):
    """The CLI with a local Ray it starts itself: SIGKILL the driver after its first finished query, rerun."""
    n = LONG_QUERIES
    local = ResumableOutput(tmp_path / "local.trec", SETUP)
    try:
        rank_jobs(iter(_jobs(dl19_long)), [minilm], RankOptions(), local, trec_tag="rerank", total=n,
                  progress_stream=StringIO())
    finally:
        local.close()
    out = tmp_path / "ray.trec"
    first = _cli_rank(dl19_long, out, rerank_home)
    progress = out.with_name(out.name + ".progress")
    try:
        deadline = time.monotonic() + 240
        while not (progress.exists() and progress.read_text().count("\n") >= 2):  # the set-up line, then a query
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() < deadline, "no query finished within 240 s"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    finally:
        _kill_group(first)
    done_before = [r["qid"] for r in map(json.loads, progress.read_text().splitlines()) if "qid" in r]
    assert 1 <= len(done_before) < n

    second = _cli_rank(dl19_long, out, rerank_home)
    try:
        _, err = second.communicate(timeout=300)
    finally:
        _kill_group(second)
    assert second.returncode == 0, err
    assert f"ranked {n - len(done_before)} queries ({n} done" in err
    assert f"queries {n}/{n}" in err and "ETA" in err  # done/total counts the queries of the first run too
    assert out.read_text() == (tmp_path / "local.trec").read_text()  # nothing lost, nothing twice, in order
    qids = [r["qid"] for r in map(json.loads, progress.read_text().splitlines()) if "qid" in r]
    assert sorted(qids) == sorted(dl19_long["qids"]) and len(set(qids)) == n


def _kill_group(proc: subprocess.Popen) -> None:
    """The local Ray a killed driver started runs in its process group: end it with the driver."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


@pytest.mark.parametrize("command", [
    ["rank", "--input", "-", "--output", "OUT", "--workers", "2"],
    ["index", "build", "--corpus", "c.jsonl", "--out", "OUT", "--address", "127.0.0.1:6379"],
    ["bench", "budgets", "--dataset", "d", "--out", "OUT", "--workers", "0", "--engine", "ray"],
])
def test_ray_flags_are_checked_before_any_work(command, tmp_path, cli):
    argv = [str(tmp_path / "o") if a == "OUT" else a for a in command]
    code, _, err = cli(argv, home=tmp_path)
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("rerank: error: ") and ("need --engine ray" in line or "--workers must be >= 1" in line)


@pytest.fixture(scope="module")
def local_ray(rerank_home):
    """One in-process local Ray for the tests below (2 CPUs, the smallest object store); pools join it."""
    os.environ["RERANK_HOME"] = str(rerank_home)  # the workers inherit it
    ray.init(address="local", num_cpus=2, object_store_memory=RayOptions().object_store_bytes,
             include_dashboard=False, log_to_driver=False, _node_ip_address=LOCAL_NODE_IP)
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {LOCAL_NODE_IP}  # loopback only
    yield
    ray.shutdown()


def test_ray_rank_writes_the_local_file_byte_for_byte(local_ray, dl19, local_run, tmp_path):
    out = ResumableOutput(tmp_path / "ray.trec", SETUP)
    stream = StringIO()
    try:
        ranked = rank_jobs(iter(_jobs(dl19)), [], RankOptions(), out, trec_tag="rerank", total=6,
                           progress_stream=stream,
                           map_jobs=_ray_rank())
    finally:
        out.close()
    assert ranked == 6
    assert (tmp_path / "ray.trec").read_text() == local_run
    assert "queries 6/6" in stream.getvalue() and "ETA" in stream.getvalue()


def test_a_worker_killed_mid_run_is_restarted_and_its_query_retried(local_ray, dl19, local_run, tmp_path):
    out = ResumableOutput(tmp_path / "ray.trec", SETUP)
    with RayPool(QueryRanker(("minilm",), RankOptions()), WORKERS) as pool:
        victim = pool.pids()[0]

        def map_jobs(jobs):
            for i, pair in enumerate(pool.map("rank", jobs)):
                if i == 0:  # the victim still has queries queued (two per actor)
                    os.kill(victim, signal.SIGKILL)
                yield pair

        try:
            ranked = rank_jobs(iter(_jobs(dl19)), [], RankOptions(), out, trec_tag="rerank", total=6,
                               progress_stream=StringIO(), map_jobs=map_jobs)
        finally:
            out.close()
        after = pool.pids()
    assert ranked == 6
    assert victim not in after and len(after) == 2  # Ray restarted the actor in a new process
    assert (tmp_path / "ray.trec").read_text() == local_run


def test_bench_budgets_cache_filled_by_actors_equals_local(local_ray, data_dir, tmp_path, minilm_store):
    dl = data_dir / "trec-dl-2019-passage"
    common = dict(dataset_dir=dl, model_spec="minilm", depth=6, samplers=["all", "random"], aggregators=["bt"],
                  calibrations=["symmetric"], budgets=[0.2, 1.0], repeats=1, max_queries=3, command="test",
                  quiet=True)
    local = run_budget_bench(out=tmp_path / "local", cache_dir=tmp_path / "cache-local", **common)
    stream = StringIO()
    distributed = run_budget_bench(
        out=tmp_path / "ray", cache_dir=tmp_path / "cache-ray", **{**common, "quiet": False},
        progress_stream=stream, map_prefs=ray_mapper(PreferenceScorer("minilm", str(dl)), "preferences", WORKERS))
    assert "preferences: queries 3/3" in stream.getvalue() and "ETA" in stream.getvalue()
    caches = [sorted((tmp_path / c).rglob("*.npz")) for c in ("cache-local", "cache-ray")]
    assert len(caches[0]) == len(caches[1]) == 3
    for a, b in zip(*caches, strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(np.load(a)["P"], np.load(b)["P"])
    assert (tmp_path / "local" / "results.csv").read_text() == (tmp_path / "ray" / "results.csv").read_text()
    assert local["best"] == distributed["best"]


def test_index_build_embeds_in_parallel_into_one_equal_index(local_ray, data_dir, tmp_path, minilm, minilm_store):
    import faiss

    from rerank.retrieval import build_index

    lines = (data_dir / "cranfield" / "corpus.jsonl").read_text().splitlines(keepends=True)[:40]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(lines))
    local = build_index(corpus, tmp_path / "local", minilm, skip_empty=True, batch_size=8)
    mapper = ray_mapper(TextEmbedder("minilm", str(minilm_store.root)), "embed", WORKERS)
    distributed = build_index(corpus, tmp_path / "ray", minilm, skip_empty=True, batch_size=8, map_batches=mapper)
    assert local.count == distributed.count > 30
    a, b = (faiss.read_index(str(tmp_path / name / "index.faiss")) for name in ("local", "ray"))
    np.testing.assert_array_equal(a.reconstruct_n(0, a.ntotal), b.reconstruct_n(0, b.ntotal))


def test_a_query_the_pipeline_refuses_names_the_query(local_ray, tmp_path):
    from rerank.comparison_io import InputError
    from rerank.offline import QueryJob
    from rerank.pipeline import Candidate

    job = QueryJob("q-bad", "a query", [Candidate("a", "x"), Candidate("b", "y")])
    out = ResumableOutput(tmp_path / "o.jsonl", SETUP)
    bad = RankOptions(sampler="nope")  # raised in the actor, re-raised here as itself
    with pytest.raises(InputError, match=r"query 'q-bad'.*unknown sampler 'nope'"):
        rank_jobs(iter([job]), [], bad, out, progress_stream=StringIO(),
                  map_jobs=ray_mapper(QueryRanker(("minilm",), bad), "rank", RayOptions(workers=1)))
    out.close()
    assert not (tmp_path / "o.jsonl").exists()  # nothing was written, so nothing was created


def test_a_model_the_workers_cannot_load_is_one_clear_error(local_ray, tmp_path):
    from rerank.distributed import WorkerSetupError
    from rerank.offline import QueryJob
    from rerank.pipeline import Candidate

    job = QueryJob("q1", "a query", [Candidate("a", "x"), Candidate("b", "y")])
    out = ResumableOutput(tmp_path / "o.jsonl", SETUP)
    with pytest.raises(WorkerSetupError, match=r"cannot set up a Ray worker: .*no-such-model"):
        rank_jobs(iter([job]), [], RankOptions(), out, progress_stream=StringIO(),
                  map_jobs=ray_mapper(QueryRanker(("no-such-model",), RankOptions()), "rank",
                                      RayOptions(workers=1)))
    out.close()


def test_the_pool_returns_results_in_input_order_whatever_order_they_finish_in(local_ray):
    """The first job sleeps longest: the other actor finishes the later jobs first, yet the pool hands them
    back in input order (which is what makes a Ray run's file equal the local one)."""
    jobs = [0.8, 0.0, 0.01, 0.02, 0.03, 0.04]  # seconds each job sleeps
    with RayPool(lambda: __import__("time"), WORKERS) as pool:
        assert [job for job, _ in pool.map("sleep", jobs)] == jobs


@pytest.mark.parametrize("kwise", [["--sampler", "setwise-heapsort"], ["--set-size", "3"],
                                   ["--aggregator", "plackett-luce"]])
def test_ray_refuses_setwise_options_in_one_line(kwise, tmp_path, cli):
    """Before: "unknown sampler" (the driver checks options without the models, which load on the actors)."""
    code, _, err = cli(["rank", "--input", "-", "--output", str(tmp_path / "o"), "--engine", "ray", *kwise],
                       home=tmp_path)
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("rerank: error: ") and "--engine ray does not run the K-wise options" in line, line
