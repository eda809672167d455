"""`rerank bench budgets` end to end (in-process) on real DL 2019 data with the oracle (fast), cache reuse
included."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rerank.bench.budgets import ReplayComparator, cached_preferences, load_dataset, replay_defaults
from rerank.evaluation import ndcg_at_k
from rerank.pipeline import Candidate, RankOptions, rerank

BUDGETS = ["bench", "budgets"]


def test_budget_bench_writes_csv_summary_plot_and_reuses_its_cache(data_dir: Path, tmp_path: Path, cli) -> None:
    args = ["--dataset", str(data_dir / "trec-dl-2019-passage"), "--model", "oracle:noise=1,bias=0.5",
            "--depth", "12", "--samplers", "all,window,heapsort,refine", "--aggregators", "bt,borda",
            "--calibrations", "symmetric", "--budgets", "0.1,33%,1.0", "--repeats", "2", "--max-queries", "4",
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    code, out, err = cli([*BUDGETS, *args])
    assert code == 0, err
    assert "preferences: queries 4/4 (100%)" in err and "pairs/s" in err and "results in" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["command"].startswith("rerank bench budgets --dataset ")  # the command line as given
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").read_text().splitlines()))
    assert {r["sampler"] for r in rows} == {"all", "window", "heapsort", "refine", "defaults"}
    assert {float(r["budget_fraction"]) for r in rows} == {0.1, 0.33, 1.0}
    for r in rows:
        assert float(r["ndcg10_ci_low"]) <= float(r["ndcg10_mean"]) <= float(r["ndcg10_ci_high"])
        assert float(r["comparisons_per_query"]) <= float(r["budget_fraction"]) * 12 * 11 + 1e-9
    assert summary["queries"] == 4 and 0 <= summary["consistency"]["order_inconsistency"] <= 1
    assert summary["all_pairs"]["sampler"] == "all"
    png = (tmp_path / "out" / "ndcg_vs_comparisons.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "All pairs" in (tmp_path / "out" / "summary.md").read_text()

    code, out, err = cli([*BUDGETS, *args])
    assert code == 0, err
    assert err and "preferences" not in err  # every query's preferences came from the cache
    code, out, err = cli([*BUDGETS, *args, "--quiet"])
    assert code == 0 and err == "" and "results in" in out  # --quiet: no progress lines
    assert (tmp_path / "out" / "results.csv").read_text().splitlines()[0] == ",".join(rows[0].keys())


def test_budget_bench_bad_arguments(data_dir: Path, tmp_path: Path, cli) -> None:
    base = ["--dataset", str(data_dir / "trec-dl-2019-passage"), "--out", str(tmp_path / "o")]
    for extra, code, message in ((["--samplers", "bogus"], 2, "unknown --samplers name(s) 'bogus'"),
                                 (["--budgets", "0.1,lots"], 2, "--budgets: 'lots' is not a fraction"),
                                 (["--budgets", "2.0"], 2, "budgets are fractions"),
                                 (["--dataset", str(tmp_path)], 1, "must hold exactly one run")):
        got, _, err = cli([*BUDGETS, *base, *extra])
        assert got == code, err
        assert message in err.strip().splitlines()[-1], err


def test_budget_bench_replays_the_defaults_on_any_collection_without_all_pairs(
    data_dir: Path, tmp_path: Path, cli
) -> None:
    """Cranfield, budgets without all pairs: the defaults are a row of the grid (through the request path), the
    summary compares them with the grid's best, and no share is printed as nan%."""
    args = ["--dataset", str(data_dir / "cranfield"), "--model", "oracle:noise=3,bias=1", "--depth", "10",
            "--samplers", "random,active", "--aggregators", "borda,hodgerank", "--calibrations", "symmetric",
            "--budgets", "0.1,0.33", "--repeats", "2", "--max-queries", "3", "--cache", str(tmp_path / "cache"),
            "--out", str(tmp_path / "out"), "--quiet"]
    code, out, err = cli([*BUDGETS, *args])
    assert code == 0, err
    text = out + (tmp_path / "out" / "summary.md").read_text()
    assert "nan" not in text.lower()
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").read_text().splitlines()))
    defaults = [r for r in rows if r["sampler"] == "defaults"]
    assert [float(r["budget_fraction"]) for r in defaults] == [0.1, 0.33]
    assert {r["aggregator"] for r in defaults} == {"hodgerank+prior1"}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for fraction, d in summary["defaults"].items():
        others = [float(r["ndcg10_mean"]) for r in rows
                  if r["sampler"] != "defaults" and float(r["budget_fraction"]) == float(fraction)]
        assert d["grid_best"] == max(others)
        assert abs(d["share_of_grid_best"] - d["ndcg10_mean"] / max(others)) < 1e-12
    assert out.count("defaults nDCG@10") == 2
    # the row is the request path itself: one query's ranking by rerank() with RankOptions() gives its value
    data = load_dataset(data_dir / "cranfield")
    prefs = cached_preferences(data, "oracle:noise=3,bias=1", 10, tmp_path / "cache", lambda: None,
                               data.judged_qids[:3], quiet=True)
    row = replay_defaults(prefs[:1], data.qrels, budgets=[0.33], repeats=1)[0]
    q = prefs[0]
    got = rerank("q", [Candidate(d, str(i)) for i, d in enumerate(q.docids)], [ReplayComparator(q.P)],
                 RankOptions(budget=0.33))
    assert row["ndcg10_mean"] == ndcg_at_k([r.id for r in got.results] + q.rest, data.qrels[q.qid], 10)

    code, out, _ = cli([*BUDGETS, *args, "--no-defaults"])
    assert code == 0 and "defaults" not in (tmp_path / "out" / "results.csv").read_text()
