"""`rerank bench budgets` end to end on real DL 2019 data with the oracle (fast), cache reuse included."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

RERANK = [sys.executable, "-m", "rerank.cli", "bench", "budgets"]


def test_budget_bench_writes_csv_summary_plot_and_reuses_its_cache(data_dir: Path, tmp_path: Path) -> None:
    args = ["--dataset", str(data_dir / "trec-dl-2019-passage"), "--model", "oracle:noise=1,bias=0.5",
            "--depth", "12", "--samplers", "all,window,heapsort,refine", "--aggregators", "bt,borda",
            "--calibrations", "symmetric", "--budgets", "0.1,33%,1.0", "--repeats", "2", "--max-queries", "4",
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    first = subprocess.run([*RERANK, *args], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "preferences: queries 4/4 (100%)" in first.stderr and "pairs/s" in first.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").read_text().splitlines()))
    assert {r["sampler"] for r in rows} == {"all", "window", "heapsort", "refine"}
    assert {float(r["budget_fraction"]) for r in rows} == {0.1, 0.33, 1.0}
    for r in rows:
        assert float(r["ndcg10_ci_low"]) <= float(r["ndcg10_mean"]) <= float(r["ndcg10_ci_high"])
        assert float(r["comparisons_per_query"]) <= float(r["budget_fraction"]) * 12 * 11 + 1e-9
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["queries"] == 4 and 0 <= summary["consistency"]["order_inconsistency"] <= 1
    assert summary["all_pairs"]["sampler"] == "all"
    png = (tmp_path / "out" / "ndcg_vs_comparisons.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "All pairs" in (tmp_path / "out" / "summary.md").read_text()

    second = subprocess.run([*RERANK, *args], capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "preferences" not in second.stderr  # every query's preferences came from the cache
    assert (tmp_path / "out" / "results.csv").read_text().splitlines()[0] == ",".join(rows[0].keys())


def test_budget_bench_bad_arguments(data_dir: Path, tmp_path: Path) -> None:
    base = ["--dataset", str(data_dir / "trec-dl-2019-passage"), "--out", str(tmp_path / "o")]
    for extra, message in ((["--samplers", "bogus"], "unknown sampler 'bogus'"),
                           (["--budgets", "2.0"], "budgets are fractions"),
                           (["--dataset", str(tmp_path)], "must hold exactly one run")):
        proc = subprocess.run([*RERANK, *base, *extra], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        assert message in proc.stderr.strip().splitlines()[-1], proc.stderr
