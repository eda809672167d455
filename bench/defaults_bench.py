"""The defaults against the grid, and the first-stage floor (issue 13), on TREC DL 2019 passage, BM25 top 50.

The defaults against the grid on any collection are a row of ``rerank bench budgets`` itself (``defaults``,
on by default; its summary.md compares them with the grid's best): this script keeps the DL19 floor (counts)
and time-budget figures, and its part 1 replays the same row.

    RERANK_HOME=bench/cache OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/defaults_bench.py \
        --out bench/results/defaults

For MiniLM and ``oracle:noise=3,bias=1`` (43 judged queries; the preference cache of ``rerank bench budgets``,
computed once when missing), everything through ``rerank.pipeline.rerank`` with ``RankOptions()`` defaults:

1. ``defaults``: nDCG@10 of the defaults at 5%, 10% and 33% of k(k-1) against the best sampler x calibration x
   aggregator of the ``rerank bench budgets`` grid at the same budget (``--grid-*`` results.csv files, run on
   the same cached preferences: by default the seeds 0-4 grids, ``minilm-depth50-seeds5`` and
   ``oracle-noise3-seeds5``); the goal is >= 99.5% of the grid's best (issue 27), seeds 0-4.
2. ``counts``: nDCG@10 against budgets from 1 comparison upward (a replay of the cached preferences), for the
   defaults and for the same with ``prior_weight=0`` (no first-stage prior): the defaults must start at the
   first stage's level and never fall below it.
3. ``time``: nDCG@10 against ``time_budget_ms`` with the real model (MiniLM on this CPU, its embedding cache
   emptied before every ranking; the oracle), for the defaults without a budget and with a 10% budget.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from rerank.bench.budgets import QueryPrefs, cached_preferences, first_stage_level, load_dataset
from rerank.bench.budgets import replay_defaults as harness_defaults
from rerank.evaluation import ndcg_at_k, rank_docs
from rerank.pipeline import Candidate, Comparator, RankOptions, rerank
from rerank.specs import TrecData, load_comparator

MODELS = {"minilm": 5, "oracle:noise=3,bias=1": 5}  # model -> seeds (0-4), as the grids' --repeats 5 (issue 27)
DEPTH = 50
GRID_BUDGETS = (0.05, 0.1, 0.33)
COUNTS = (1, 2, 5, 10, 20, 50, 100, 245, 2450)
TIME_MS = (1, 3, 10, 30, 100, 300, 1000, 3000)


def ndcg_of(q: QueryPrefs, out_ids: list[str], qrels: dict[str, dict[str, int]]) -> float:
    return ndcg_at_k(out_ids + q.rest, qrels[q.qid], 10)


def replay_defaults(prefs: list[QueryPrefs], qrels: dict, budget: int | float, seeds: int, **changes) -> dict:
    """Mean nDCG@10 (over queries of the mean over seeds) of RankOptions(budget, **changes) on the cache: the
    ``defaults`` row of ``rerank bench budgets`` (:func:`rerank.bench.budgets.replay_defaults`)."""
    row = harness_defaults(prefs, qrels, budgets=[budget], repeats=seeds, **changes)[0]
    return {"ndcg10": row["ndcg10_mean"], "comparisons_per_query": row["comparisons_per_query"]}


def grid_best(path: Path) -> dict[float, dict]:
    """The best row per budget fraction of a ``rerank bench budgets`` results.csv."""
    best: dict[float, dict] = {}
    with open(path) as handle:
        for row in csv.DictReader(handle):
            f = float(row["budget_fraction"])
            if f in GRID_BUDGETS and (f not in best or float(row["ndcg10_mean"]) > float(best[f]["ndcg10_mean"])):
                best[f] = row
    return best


def replay_parts(prefs: list[QueryPrefs], qrels: dict, first: float, seeds: int, name: str) -> dict:
    """The defaults at the grid's budgets, and the defaults with and without the prior from 1 comparison up."""
    res: dict = {"first_stage": first, "queries": len(prefs), "seeds": seeds, "defaults": [], "counts": []}
    for fraction in GRID_BUDGETS:
        got = replay_defaults(prefs, qrels, fraction, seeds)
        res["defaults"].append({"budget_fraction": fraction, **got})
        print(f"{name} {fraction:.0%}: defaults {got['ndcg10']:.4f}", file=sys.stderr)
    for count in COUNTS:
        with_prior = replay_defaults(prefs, qrels, count, seeds)
        without = replay_defaults(prefs, qrels, count, seeds, prior_weight=0.0)
        res["counts"].append({"comparisons": count, "defaults": with_prior["ndcg10"], "no_prior": without["ndcg10"]})
        print(f"{name} {count} comparisons: defaults {with_prior['ndcg10']:.4f}, no prior "
              f"{without['ndcg10']:.4f} (first stage {first:.4f})", file=sys.stderr)
    return res


def compare_with_grid(res: dict, grid: Path) -> None:
    """Add the grid's best at each budget (waits for a grid run still writing its results.csv)."""
    while not grid.exists():
        time.sleep(10)
    best = grid_best(grid)
    for row in res["defaults"]:
        g = best[row["budget_fraction"]]
        row.update(grid_best=float(g["ndcg10_mean"]), share_of_grid_best=row["ndcg10"] / float(g["ndcg10_mean"]),
                   grid_best_config=f"{g['sampler']}+{g['calibration']}+{g['aggregator']}")
        print(f"{row['budget_fraction']:.0%}: defaults {row['ndcg10']:.4f} vs grid {row['grid_best']:.4f} "
              f"({row['share_of_grid_best']:.1%})", file=sys.stderr)


def timed(model: Comparator, data, prefs: list[QueryPrefs], qrels: dict, budget: float | None,
          time_ms: tuple[int, ...] = TIME_MS) -> list[dict]:
    """nDCG@10 against time_budget_ms with the real model and the real clock."""
    rows = []
    for ms in time_ms:
        values, used, partial, elapsed = [], [], [], []
        for q in prefs:
            cands = [Candidate(d, data.corpus[d]) for d in q.docids]
            if getattr(model, "cache", None) is not None:  # every ranking starts without cached embeddings
                model.cache = type(model.cache)(model.cache.max_items)
            out = rerank(data.queries[q.qid], cands, [model], RankOptions(budget=budget, time_budget_ms=ms))
            values.append(ndcg_of(q, [r.id for r in out.results], qrels))
            used.append(out.usage.comparisons)
            partial.append(out.usage.partial)
            elapsed.append(out.usage.elapsed_ms)
        rows.append({"time_budget_ms": ms, "budget": budget, "ndcg10": float(np.mean(values)),
                     "comparisons_per_query": float(np.mean(used)), "partial_share": float(np.mean(partial)),
                     "elapsed_ms_mean": float(np.mean(elapsed))})
        print(f"  time {ms} ms (budget {budget}): nDCG@10 {rows[-1]['ndcg10']:.4f}, "
              f"{rows[-1]['comparisons_per_query']:.0f} comparisons", file=sys.stderr)
    return rows


def plot(out: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    for name, res in results.items():
        first = res["first_stage"]
        ax = axes[0]
        xs = [r["comparisons"] for r in res["counts"]]
        line, = ax.plot(xs, [r["defaults"] for r in res["counts"]], marker="o", label=f"{name}: defaults")
        ax.plot(xs, [r["no_prior"] for r in res["counts"]], marker="x", linestyle=":", color=line.get_color(),
                label=f"{name}: prior_weight=0")
        ax = axes[1]
        for budget, style in ((None, "-"), (0.1, "--")):
            pts = [r for r in res["time"] if r["budget"] == budget]
            ax.plot([r["time_budget_ms"] for r in pts], [r["ndcg10"] for r in pts], marker="o", linestyle=style,
                    color=line.get_color(), label=f"{name}: defaults, budget {'all' if budget is None else '10%'}")
    for ax, xlabel in zip(axes, ("comparisons per query (budget)", "time_budget_ms"), strict=True):
        ax.axhline(first, color="gray", linestyle="--", label=f"first stage (BM25) {first:.4f}")
        if any(len(line.get_xdata()) for line in ax.lines):
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("nDCG@10")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_title("DL19, BM25 top 50: nDCG@10 against the budget", fontsize=9)
    axes[1].set_title("against the time budget (real model, this CPU)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "ndcg_vs_budget_and_time.png")
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("RERANK_DATA", "../shared/data"))
    parser.add_argument("--cache", default="bench/cache/preferences")
    parser.add_argument("--grid-minilm", default="bench/results/budgets/minilm-depth50-seeds5/results.csv")
    parser.add_argument("--grid-oracle", default="bench/results/budgets/oracle-noise3-seeds5/results.csv")
    parser.add_argument("--out", required=True)
    parser.add_argument("--skip-time", action="store_true",
                        help="leave out the time-budget part (its rows already in results.json are kept)")
    parser.add_argument("--time-only", action="store_true",
                        help="only the time-budget part; the other parts are kept from results.json in --out")
    parser.add_argument("--time-ms", default=",".join(map(str, TIME_MS)), help="time budgets (ms), comma-separated")
    parser.add_argument("--time-budgets", default="all,0.1",
                        help="comparison budgets of the time part: all and/or fractions, comma-separated")
    parser.add_argument("--render", action="store_true", help="only rewrite summary.md and the plot from results.json")
    parser.add_argument("--model", action="append", choices=list(MODELS),
                        help="repeatable; default all; results of other models already in --out are kept")
    args = parser.parse_args()
    data = load_dataset(Path(args.data) / "trec-dl-2019-passage")
    trec = TrecData(data.qrels, data.queries, data.corpus)
    grids = {"minilm": Path(args.grid_minilm), "oracle:noise=3,bias=1": Path(args.grid_oracle)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    previous = out / "results.json"
    results: dict = json.loads(previous.read_text())["models"] if previous.exists() else {}
    if args.render:
        saved = json.loads(previous.read_text())
        write_summary(out, saved, saved["models"])
        plot(out, saved["models"])
        return 0
    for name in args.model or list(MODELS):
        seeds = MODELS[name]
        started = time.monotonic()
        prefs = cached_preferences(data, name, DEPTH, Path(args.cache), lambda name=name: load_comparator(
            name, trec=trec), data.judged_qids)
        assert all(len(rank_docs(data.run[q.qid])) >= DEPTH for q in prefs)
        first = first_stage_level(prefs, data.qrels)
        if args.time_only:
            res = results.get(name) or {"first_stage": first, "queries": len(prefs), "seeds": seeds, "defaults": [],
                                        "counts": []}
        else:
            res = replay_parts(prefs, data.qrels, first, seeds, name)
            res["replay_seconds"] = time.monotonic() - started
            compare_with_grid(res, grids[name])
        res["time"] = (results.get(name) or {}).get("time", []) if args.skip_time else []
        if not args.skip_time:
            model = load_comparator(name, trec=trec)
            ms = tuple(int(x) for x in args.time_ms.split(","))
            budgets = [None if b == "all" else float(b) for b in args.time_budgets.split(",")]
            res["time"] = [row for budget in budgets for row in timed(model, data, prefs, data.qrels, budget, ms)]
        results[name] = res
    meta = {"command": "RERANK_HOME=bench/cache OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/defaults_bench.py "
                       "--out " + args.out + " [--model M: one model per run]",
            "defaults": {k: v for k, v in RankOptions().__dict__.items() if v is not None},
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "depth": DEPTH}
    results = {name: results[name] for name in MODELS if name in results}
    (out / "results.json").write_text(json.dumps({**meta, "models": results}, indent=2))
    write_summary(out, meta, results)
    plot(out, results)
    return 0


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def write_summary(out: Path, meta: dict, results: dict) -> None:
    lines = ["# Defaults against the grid, and the first-stage floor", "", f"Command: `{meta['command']}`", "",
             f"DL19 passage, BM25 top {meta['depth']}, 43 judged queries; defaults `{meta['defaults']}`.", ""]
    for name, res in results.items():
        lines += [f"## {name}", "", f"First stage nDCG@10: {res['first_stage']:.4f}; seeds: {res['seeds']}.", "",
                  "| budget | comparisons/query | defaults | grid best | grid best configuration | share |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in res["defaults"]:
            lines.append(f"| {r['budget_fraction']:.0%} | {r['comparisons_per_query']:.0f} | {r['ndcg10']:.4f} | "
                         f"{r['grid_best']:.4f} | {r['grid_best_config']} | {r['share_of_grid_best']:.2%} |")
        if res["counts"]:
            floor = min(r["defaults"] for r in res["counts"])
            lines += ["", "| comparisons | defaults | prior_weight=0 |", "| --- | --- | --- |"]
            lines += [f"| {r['comparisons']} | {r['defaults']:.4f} | {r['no_prior']:.4f} |" for r in res["counts"]]
            lines += ["", f"Lowest nDCG@10 of the defaults over the budgets: {floor:.4f} "
                          f"({'not below' if floor >= res['first_stage'] - 1e-12 else 'BELOW'} the first stage)."]
        if res["time"]:
            lines += ["", "| time_budget_ms | budget | nDCG@10 | comparisons/query | partial | mean elapsed ms |",
                      "| --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {r['time_budget_ms']} | {'all' if r['budget'] is None else '10%'} | {r['ndcg10']:.4f} | "
                      f"{r['comparisons_per_query']:.0f} | {_fmt(r.get('partial_share'), '.0%')} | "
                      f"{_fmt(r.get('elapsed_ms_mean'), '.0f')} |" for r in res["time"]]
        lines.append("")
    lines += ["![nDCG@10 against budget and time](ndcg_vs_budget_and_time.png)", ""]
    (out / "summary.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
