"""Engine benchmarks: noise robustness (a simulation anyone can rerun) and aggregation speed.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/engine_bench.py --out bench/results   # both parts
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/engine_bench.py --out bench/results --part speed

(One BLAS thread: the matrices are small, and OpenBLAS threads only contend on this 2-core machine.)

Noise simulation (definition, also written beside the results):
- k items with a hidden order; the first stage sees them through noise: first-stage score = -hidden rank +
  N(0, sigma_fs^2), and items are indexed in first-stage order (so window samplers start from a realistic,
  imperfect order; sigma_fs = 10 for k = 50).
- Each model call on the ordered pair (a, b) draws independently: with probability 0.8 it favours the truly
  better item, else the other; p_base = 0.8 if it favours a, 0.2 if it favours b; then a first-slot bias is
  added: p = min(1, p_base + 0.15).
- For every sampler x calibration x aggregator x budget (5%, 10%, 33%, 100% of k(k-1)) and R seeds, the
  Kendall tau between the produced ranking and the hidden order; sorting samplers are run with top_n = k
  (a full sort) and also scored by their own order ("sampler-order"); every aggregator also runs with the
  first-stage prior appended ("+prior").
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rerank.aggregation import Comparisons
from rerank.aggregation.prior import first_stage_prior
from rerank.aggregation.registry import AGGREGATORS, CALIBRATIONS, SAMPLERS
from rerank.aggregation.samplers import run_sampler
from rerank.evaluation import kendall_tau

BUDGETS = (0.05, 0.10, 0.33, 1.00)
SORTING = {"heapsort", "quicksort", "sliding", "refine"}
P_CORRECT, P_HIGH, SLOT_BIAS = 0.8, 0.8, 0.15
PRIOR_WEIGHT = 1.0  # "+prior" rows: aggregation.prior.first_stage_prior with its default span and p


def noisy_biased_comparator(hidden_rank: np.ndarray, rng: np.random.Generator) -> Callable:
    """The simulated model: right with probability 0.8, p in {0.8, 0.2}, plus 0.15 for slot A."""

    def compare(pairs: list[tuple[int, int]]) -> np.ndarray:
        arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        a_better = hidden_rank[arr[:, 0]] < hidden_rank[arr[:, 1]]
        right = rng.random(len(arr)) < P_CORRECT
        favours_a = np.where(right, a_better, ~a_better)
        return np.minimum(1.0, np.where(favours_a, P_HIGH, 1 - P_HIGH) + SLOT_BIAS)

    return compare


def make_instance(k: int, sigma_fs: float, rng: np.random.Generator) -> np.ndarray:
    """The true rank (0 = truly best) of the item at each first-stage position.

    Items are named by their true rank t; the first stage scores them -t + N(0, sigma_fs^2) and lists them
    by that score, so sorting the scores gives the true ranks in first-stage order.
    """
    first_stage_score = -np.arange(k) + rng.normal(0.0, sigma_fs, size=k)
    return np.argsort(-first_stage_score, kind="stable")


def simulate(k: int, repeats: int, sigma_fs: float, calibrations: list[str]) -> list[dict]:
    all_pairs = k * (k - 1)
    rows: list[dict] = []
    for sampler_name, sampler in SAMPLERS.items():
        for fraction in BUDGETS:
            budget = int(np.floor(fraction * all_pairs))
            taus: dict[tuple[str, str], list[float]] = {}
            used: list[int] = []
            fs_taus: list[float] = []
            for rep in range(repeats):
                rng = np.random.default_rng(10_000 * rep + 17)
                # first_stage[i] = true rank of the item shown at first-stage position i
                true_rank_at = make_instance(k, sigma_fs, rng)
                hidden_order = np.argsort(true_rank_at, kind="stable")  # positions, truly best first
                fs_taus.append(kendall_tau(list(range(k)), list(hidden_order)))
                top_n = k if sampler_name in SORTING else 10
                outcome = run_sampler(sampler, k, budget, noisy_biased_comparator(true_rank_at, rng),
                                      seed=rep, top_n=top_n)
                used.append(outcome.used)
                prior = first_stage_prior(k, PRIOR_WEIGHT)
                for cal in calibrations:
                    calibrated = CALIBRATIONS[cal](outcome.comparisons)
                    with_prior = Comparisons.concat(k, [calibrated, prior])
                    for agg_name, agg in AGGREGATORS.items():
                        for suffix, comps in (("", calibrated), ("+prior", with_prior)):
                            order = agg(comps).ranking()
                            tau = kendall_tau(list(order), list(hidden_order))
                            taus.setdefault((cal, agg_name + suffix), []).append(tau)
                if outcome.order is not None:
                    taus.setdefault(("-", "sampler-order"), []).append(
                        kendall_tau(list(outcome.order), list(hidden_order)))
            for (cal, agg_name), values in taus.items():
                rows.append({
                    "sampler": sampler_name, "calibration": cal, "aggregator": agg_name,
                    "budget_fraction": fraction, "budget": budget,
                    "mean_comparisons": float(np.mean(used)),
                    "tau_mean": float(np.mean(values)), "tau_std": float(np.std(values)),
                    "first_stage_tau": float(np.mean(fs_taus)), "repeats": repeats,
                })
            print(f"  {sampler_name:9s} {fraction:4.0%} used {np.mean(used):7.1f}", file=sys.stderr)
    return rows


def write_noise(rows: list[dict], out: Path, k: int, repeats: int, sigma_fs: float, seconds: float) -> dict:
    with open(out / "engine_noise.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    all_pairs_rows = [r for r in rows if r["sampler"] == "all" and r["budget_fraction"] == 1.0]
    best_all = max(all_pairs_rows, key=lambda r: r["tau_mean"])
    lines = [
        "# Engine noise robustness (simulation)",
        "",
        "Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/engine_bench.py --part noise "
        f"--k {k} --repeats {repeats} "
        f"--out bench/results` ({seconds:.0f} s on {platform.processor() or platform.machine()}, "
        f"{platform.python_version()}).",
        "",
        f"Definition: k = {k} items with a hidden order; first-stage score = -hidden rank + "
        f"N(0, {sigma_fs:.0f}^2), items indexed in first-stage order (mean first-stage Kendall tau "
        f"{rows[0]['first_stage_tau']:.3f}). Each model call on (a, b) favours the truly better item with "
        "probability 0.8 (independently per call), p_base = 0.8 if it favours a, 0.2 if it favours b, plus a "
        "first-slot bias: p = min(1, p_base + 0.15). Sorting samplers run with top_n = k. "
        f"Tau = Kendall tau to the hidden order, mean over {repeats} seeds. `+prior`: the aggregator on the "
        f"calibrated comparisons plus the first-stage prior (aggregation/prior.py, weight {PRIOR_WEIGHT}, "
        "span 10, p 0.6; pseudo-rows, not model calls).",
        "",
        f"Best all-pairs result (sampler `all`, both orders, 100%): {best_all['calibration']} + "
        f"{best_all['aggregator']}, tau {best_all['tau_mean']:.3f}.",
        "",
        "## Best combination per budget",
        "",
        "| budget | sampler | calibration | aggregator | comparisons | tau | gap to best all-pairs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    summary = {"best_all_pairs": best_all, "best_by_budget": {}}
    for fraction in BUDGETS:
        cands = [r for r in rows if r["budget_fraction"] == fraction]
        best = max(cands, key=lambda r: r["tau_mean"])
        summary["best_by_budget"][str(fraction)] = best
        lines.append(
            f"| {fraction:.0%} | {best['sampler']} | {best['calibration']} | {best['aggregator']} | "
            f"{best['mean_comparisons']:.0f} | {best['tau_mean']:.3f} | "
            f"{best_all['tau_mean'] - best['tau_mean']:+.3f} |"
        )
    ten = summary["best_by_budget"]["0.1"]
    gap = best_all["tau_mean"] - ten["tau_mean"]
    summary["goal_10pct_within_0.05"] = bool(gap <= 0.05)
    lines += ["", f"Goal (best sparse at 10% within 0.05 tau of best all-pairs): gap {gap:.3f} -> "
              f"{'met' if gap <= 0.05 else 'NOT met'}.", ""]
    for cal in sorted({r["calibration"] for r in rows}):
        lines += [f"## Tau per sampler x aggregator, calibration `{cal}`", ""]
        aggs = sorted({r["aggregator"] for r in rows if r["calibration"] == cal})
        lines.append("| sampler | budget | comparisons | " + " | ".join(aggs) + " |")
        lines.append("| --- | --- | --- | " + " | ".join("---" for _ in aggs) + " |")
        for sampler in SAMPLERS:
            for fraction in BUDGETS:
                cell = {r["aggregator"]: r for r in rows if r["calibration"] == cal
                        and r["sampler"] == sampler and r["budget_fraction"] == fraction}
                if not cell:
                    continue
                used = next(iter(cell.values()))["mean_comparisons"]
                vals = " | ".join(f"{cell[a]['tau_mean']:.3f}" if a in cell else "" for a in aggs)
                lines.append(f"| {sampler} | {fraction:.0%} | {used:.0f} | {vals} |")
        lines.append("")
    (out / "engine_noise.md").write_text("\n".join(lines))
    return summary


def time_median(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def speed(out: Path) -> dict:
    results: dict = {}
    lines = ["# Aggregation speed", "",
             "Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/engine_bench.py --part speed "
             "--out bench/results`; median of "
             "repeated runs in ms, all ordered pairs with random p, this machine "
             f"({platform.processor() or platform.machine()}, {platform.python_version()}). "
             "`aggregator` = the aggregator alone on the raw comparisons; `+symmetric` = calibration then "
             "aggregation (what `rerank aggregate` does by default).", "",
             "| k | comparisons | method | aggregator ms | +symmetric ms | repeats |",
             "| --- | --- | --- | --- | --- | --- |"]
    for k, repeats in ((100, 51), (1000, 3)):
        rng = np.random.default_rng(k)
        a, b = np.nonzero(~np.eye(k, dtype=bool))
        comps = Comparisons(k, a, b, rng.random(len(a)))
        for name, agg in AGGREGATORS.items():
            raw = time_median(lambda agg=agg, comps=comps: agg(comps), repeats)
            cal = time_median(lambda agg=agg, comps=comps: agg(CALIBRATIONS["symmetric"](comps)), repeats)
            results[f"k{k}/{name}"] = {"aggregator_ms": raw, "symmetric_ms": cal, "comparisons": len(comps)}
            lines.append(f"| {k} | {len(comps)} | {name} | {raw:.2f} | {cal:.2f} | {repeats} |")
            print(f"  k={k} {name}: {raw:.2f} ms / {cal:.2f} ms", file=sys.stderr, flush=True)
    b100, bt100 = results["k100/borda"]["aggregator_ms"], results["k100/bt"]["aggregator_ms"]
    lines += ["", f"Targets at k = 100: Borda under 5 ms ({b100:.2f} ms: "
              f"{'met' if b100 < 5 else 'NOT met'}), "
              f"Bradley-Terry under 50 ms ({bt100:.2f} ms: {'met' if bt100 < 50 else 'NOT met'}).", ""]
    (out / "engine_speed.md").write_text("\n".join(lines))
    (out / "engine_speed.json").write_text(json.dumps(results, indent=2))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--part", choices=["noise", "speed", "all"], default="all")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sigma-fs", type=float, default=10.0)
    parser.add_argument("--calibrations", default="symmetric,bias,none")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.part in ("speed", "all"):
        speed(args.out)
    if args.part in ("noise", "all"):
        t0 = time.perf_counter()
        rows = simulate(args.k, args.repeats, args.sigma_fs, args.calibrations.split(","))
        summary = write_noise(rows, args.out, args.k, args.repeats, args.sigma_fs, time.perf_counter() - t0)
        (args.out / "engine_noise.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps({k: v for k, v in summary.items() if k != "best_by_budget"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
