"""`rerank aggregate` as a user runs it: one subprocess smoke test of the entry point, the other cases\nin-process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_rerank

from rerank.aggregation.registry import RAW_ROW_AGGREGATORS, names


@pytest.fixture
def run(cli):
    """``rerank`` in-process, answered like a finished subprocess."""

    def go(args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        code, out, err = cli(args, stdin)
        return subprocess.CompletedProcess(args, code, out, err)

    return go


def lines(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# d1 > d2 > d3, both orders, with a first-slot bias the symmetric calibration removes
BIASED = [
    {"a": "d1", "b": "d2", "p": 0.95}, {"a": "d2", "b": "d1", "p": 0.40},
    {"a": "d2", "b": "d3", "p": 0.90}, {"a": "d3", "b": "d2", "p": 0.55},
    {"a": "d1", "b": "d3", "p": 0.97}, {"a": "d3", "b": "d1", "p": 0.30},
]


def test_default_is_bt_with_symmetric_calibration_and_reports_stderr() -> None:
    proc = run_rerank(["aggregate", "--input", "-"], stdin=lines(BIASED), timeout=60)  # the entry point's smoke test
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(out) == 1
    rec = out[0]
    assert rec["group"] is None and rec["method"] == "bt" and rec["calibration"] == "symmetric"
    assert [r["id"] for r in rec["ranking"]] == ["d1", "d2", "d3"]
    assert [r["rank"] for r in rec["ranking"]] == [1, 2, 3]
    assert all(r["stderr"] > 0 for r in rec["ranking"])
    assert rec["comparisons"] == 6
    assert rec["order_inconsistency"] == pytest.approx(1 / 3)  # d2 vs d3: slot A won both times
    assert rec["ranking"][0]["score"] > rec["ranking"][1]["score"] > rec["ranking"][2]["score"]


@pytest.mark.parametrize("method", names("aggregator"))
def test_every_method_ranks_groups_separately(method: str, tmp_path: Path, run) -> None:
    rows = [{**r, "group": "q1"} for r in BIASED] + [
        {"a": 7, "b": 8, "p": 0.2, "group": "q2"}, {"a": 8, "b": 7, "p": 0.9, "group": "q2"},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text(lines(rows))
    dst = tmp_path / "out.jsonl"
    calibration = "none" if method in RAW_ROW_AGGREGATORS else "symmetric"
    proc = run(["aggregate", "--input", str(src), "--output", str(dst), "--method", method,
                "--calibration", calibration])
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(x) for x in dst.read_text().splitlines()]
    assert [o["group"] for o in out] == ["q1", "q2"]
    assert [r["id"] for r in out[0]["ranking"]] == ["d1", "d2", "d3"]
    assert [r["id"] for r in out[1]["ranking"]] == [8, 7]
    # the two with standard errors, and auto, which runs one of them
    assert ("stderr" in out[0]["ranking"][0]) == (method in ("bt", "hodgerank", "auto"))


def test_help_lists_every_method_and_calibration(run) -> None:
    proc = run(["aggregate", "--help"])
    assert proc.returncode == 0
    for name in names("aggregator") + names("calibration"):
        assert name in proc.stdout


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["--method", "elo"], lines(BIASED), 2, "unknown --method 'elo'; known: auto, borda"),
        (["--calibration", "magic"], lines(BIASED), 2, "unknown --calibration 'magic'"),
        ([], lines(BIASED[:1]) + '{"a": "x", "b": "y", "p": 1.2}\n', 1, "line 2: \"p\" must be in [0, 1]"),
        ([], lines(BIASED[:2]) + "{not json\n", 1, "line 3: not valid JSON"),
        ([], '{"a": "x", "p": 0.5}\n', 1, 'line 1: missing key "b"'),
        ([], '{"a": "x", "b": "x", "p": 0.5}\n', 1, "line 1: item \"x\" is compared with itself"),
        ([], '{"a": "x", "b": "y", "p": "high"}\n', 1, 'line 1: "p" must be a number'),
        ([], '{"a": null, "b": "y", "p": 0.5}\n', 1, 'line 1: "a" must be a string or an integer id'),
        ([], '[1, 2, 3]\n', 1, "line 1: expected a JSON object"),
        ([], "", 1, "input has no comparisons"),
        (["--input", "/nonexistent/file.jsonl"], "", 1, "cannot read --input"),
        (["--bogus"], "", 2, "No such option '--bogus'"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(args: list[str], stdin: str, code: int, message: str, run) -> None:
    proc = run(["aggregate", *args], stdin)
    assert proc.returncode == code
    assert proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert message in err[0]


def test_bad_input_leaves_no_output_file(tmp_path: Path, run) -> None:
    dst = tmp_path / "out.jsonl"
    proc = run(["aggregate", "--output", str(dst)], lines(BIASED) + '{"a": 1}\n')
    assert proc.returncode == 1
    assert not dst.exists()


def test_disconnected_items_are_all_ranked(run) -> None:
    rows = [{"a": "a", "b": "b", "p": 0.8}, {"a": "c", "b": "d", "p": 0.3}]
    for method in names("aggregator"):
        calibration = "none" if method in RAW_ROW_AGGREGATORS else "symmetric"
        proc = run(["aggregate", "--method", method, "--calibration", calibration], lines(rows))
        assert proc.returncode == 0, proc.stderr
        rec = json.loads(proc.stdout)
        assert sorted(r["id"] for r in rec["ranking"]) == ["a", "b", "c", "d"]


def test_first_slot_sum_refuses_calibrated_rows(tmp_path: Path, run) -> None:
    """duoBERT's sum reads the slot of each answer: after a calibration that merges both orders it would rank
    by the lower item id, so the combination is a usage error, not a silently wrong ranking."""
    src = tmp_path / "in.jsonl"
    src.write_text(lines(BIASED))
    proc = run(["aggregate", "--input", str(src), "--method", "sum", "--calibration", "symmetric"])
    assert proc.returncode == 2
    assert "--calibration" in proc.stderr and "needs calibration 'none'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
