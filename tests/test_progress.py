"""The one progress reporter (rerank/progress.py): a tqdm bar on a terminal, complete plain lines elsewhere,
nothing when quiet; `rerank rank`, the budget benchmark, embedding and model exports report through it."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rerank.offline import ResumableOutput, rank_jobs, trec_jobs
from rerank.pipeline import RankOptions
from rerank.progress import Progress
from rerank.specs import TrecData, load_comparator

PLAIN = re.compile(r"^(?P<desc>[\w ]+): (?P<unit>\w+) (?P<n>\d+)/(?P<total>\d+) \(\d+%\) \| [\d.,]+ \w+/s( \| .*)? \| "
                   r"elapsed \d\d:\d\d \| ETA \d\d:\d\d$")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_are_complete_and_periodic() -> None:
    stream = io.StringIO()
    with Progress(4, desc="rank", unit="queries", stream=stream, interval_s=0.0) as progress:
        for _ in range(4):
            progress.update(1, comparisons=10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in stream.getvalue()  # a line per update at interval 0, none repeated
    for i, line in enumerate(lines, start=1):
        m = PLAIN.match(line)
        assert m, line
        assert (m["desc"], m["unit"], int(m["n"]), int(m["total"])) == ("rank", "queries", i, 4)
        assert "comparisons/s" in line


def test_plain_lines_wait_for_the_interval_then_end_with_one_line() -> None:
    stream = io.StringIO()
    with Progress(100, desc="embed", unit="docs", stream=stream, interval_s=3600) as progress:
        for _ in range(100):
            progress.update(1)
    (line,) = stream.getvalue().splitlines()
    assert PLAIN.match(line) and "docs 100/100 (100%)" in line


def test_a_resumed_run_counts_earlier_work_in_done_total_not_in_the_rate() -> None:
    stream = io.StringIO()
    progress = Progress(6, desc="rank", unit="queries", stream=stream, initial=4, interval_s=3600)
    progress.start -= 10.0  # as if this run had taken 10 s for its one query
    progress.update(1)
    progress.close()
    assert "queries 5/6 (83%) | 0.10 queries/s" in stream.getvalue() and "ETA 00:10" in stream.getvalue()


def test_quiet_writes_nothing() -> None:
    stream = Terminal()
    with Progress(3, desc="rank", unit="queries", stream=stream, quiet=True, interval_s=0.0) as progress:
        progress.update(3)
        progress.stage("step")
    assert stream.getvalue() == ""


def test_a_terminal_gets_a_live_bar() -> None:
    stream = Terminal()
    with Progress(8, desc="rank", unit="queries", stream=stream) as progress:
        for _ in range(8):
            progress.update(1, comparisons=3)
    text = stream.getvalue()
    assert "\r" in text and "rank: 100%|" in text and "8/8" in text and "queries/s" in text
    assert "comparisons/s" in text and text.endswith("\n")


def test_nothing_done_means_no_line() -> None:
    stream = io.StringIO()
    Progress(None, desc="embed", unit="docs", stream=stream).close()
    assert stream.getvalue() == ""


def test_stages_print_one_line_each() -> None:
    stream = io.StringIO()
    with Progress(None, desc="export minilm", unit="steps", stream=stream) as progress:
        progress.stage("export to ONNX")
        progress.stage("parity model.onnx")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("export minilm: steps 0 | export to ONNX")
    assert lines[1].startswith("export minilm: steps 1 | parity model.onnx")
    assert lines[2].startswith("export minilm: steps 2 | ") and "elapsed" in lines[2]


# --- through the library and the command -----------------------------------------------------------------
@pytest.fixture(scope="module")
def dl19(data_dir: Path) -> dict:
    from rerank.evaluation import read_corpus, read_qrels, read_queries, read_run

    dl = data_dir / "trec-dl-2019-passage"
    run = read_run(dl / "run.bm25.top100.trec")
    qids = sorted(run)[:4]
    return {"dir": dl, "run": run, "qids": qids, "trec": TrecData(
        read_qrels(dl / "qrels.txt"), read_queries(dl / "queries.tsv"), read_corpus(dl / "corpus.jsonl"))}


def _rank(dl19: dict, out: Path, **kwargs) -> int:
    trec = dl19["trec"]
    jobs = trec_jobs(dl19["qids"], dl19["run"], trec.queries, trec.corpus, 10)
    oracle = load_comparator("oracle:noise=0", trec=trec)
    output = ResumableOutput(out, {"mode": "test"})
    try:
        return rank_jobs(jobs, [oracle], RankOptions(), output, trec_tag="t", total=len(dl19["qids"]), **kwargs)
    finally:
        output.close()


def test_rank_jobs_reports_plain_lines_bar_or_nothing(dl19: dict, tmp_path: Path) -> None:
    plain, terminal, quiet = io.StringIO(), Terminal(), io.StringIO()
    assert _rank(dl19, tmp_path / "a.trec", progress_stream=plain) == 4
    (line,) = plain.getvalue().splitlines()
    assert PLAIN.match(line) and line.startswith("rank: queries 4/4 (100%) | ") and "comparisons/s" in line
    assert _rank(dl19, tmp_path / "b.trec", progress_stream=terminal) == 4
    assert "\r" in terminal.getvalue() and "4/4" in terminal.getvalue() and "%|" in terminal.getvalue()
    assert _rank(dl19, tmp_path / "c.trec", progress_stream=quiet, quiet=True) == 4
    assert quiet.getvalue() == ""


def test_rerank_rank_writes_plain_progress_lines_to_a_pipe(dl19: dict, tmp_path: Path) -> None:
    dl = dl19["dir"]
    small = tmp_path / "small.trec"
    small.write_text("".join(
        f"{q} Q0 {d} {i} {s} bm25\n" for q in dl19["qids"]
        for i, (d, s) in enumerate(sorted(dl19["run"][q].items(), key=lambda x: -x[1]), start=1)))
    args = [sys.executable, "-m", "rerank.cli", "rank", "--run", str(small), "--corpus", str(dl / "corpus.jsonl"),
            "--queries", str(dl / "queries.tsv"), "--qrels", str(dl / "qrels.txt"), "--depth", "10",
            "--model", "oracle:noise=0", "--output", str(tmp_path / "out.trec")]
    env = {**os.environ, "RERANK_HOME": str(tmp_path)}
    proc = subprocess.run([*args, "--max-queries", "3"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("rank: ")]
    assert len(lines) == 1 and PLAIN.match(lines[0]) and "queries 3/3 (100%)" in lines[0]
    assert "\r" not in proc.stderr
    resumed = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    (line,) = [x for x in resumed.stderr.splitlines() if x.startswith("rank: ")]
    assert "queries 4/4 (100%)" in line and "ranked 1 queries (4 done" in resumed.stderr


def test_budget_bench_reports_preferences_and_replay(data_dir: Path, tmp_path: Path) -> None:
    from rerank.bench.budgets import run_budget_bench

    common = dict(dataset_dir=data_dir / "trec-dl-2019-passage", model_spec="oracle:noise=0", depth=5,
                  samplers=["random"], aggregators=["borda"], calibrations=["none"], budgets=[0.5, 1.0], repeats=1,
                  cache_dir=tmp_path / "cache", max_queries=2, command="test")
    stream = io.StringIO()
    run_budget_bench(out=tmp_path / "a", progress_stream=stream, **common)
    text = stream.getvalue()
    assert "preferences: queries 2/2 (100%)" in text and "pairs/s" in text
    assert "replay: budgets 2/2 (100%)" in text and "comparisons/s" in text
    quiet = io.StringIO()
    run_budget_bench(out=tmp_path / "b", progress_stream=quiet, quiet=True, **common)
    assert quiet.getvalue() == ""


def test_an_export_reports_its_steps(tmp_path: Path) -> None:
    from rerank.models.export import export_model
    from rerank.models.testing import build_tiny_bert_classifier

    src = build_tiny_bert_classifier(tmp_path / "ckpt")
    stream = io.StringIO()
    with Progress(None, desc="export tiny", unit="steps", stream=stream) as progress:
        export_model(src, "duo-cross-encoder", tmp_path / "out", quantize="int8", progress=progress)
    text = stream.getvalue()
    for step in ("export to ONNX", "parity model.onnx", "quantize int8", "parity model.int8.onnx"):
        assert f" | {step}" in text, text
    assert text.splitlines()[-1].startswith("export tiny: steps ")
