"""Bradley-Terry fit (with standard errors) as this checkout has it against the same file at another git
revision and against ``choix.ilsr_pairwise_dense`` (one BLAS thread), interleaved on the same data:

    .venv/bin/python bench/bt_fit_bench.py --baseline fb20a74 --out bench/results --reps 21

The fit alone (``bradley_terry`` on the comparisons, alpha 0.02 = choix's 0.01), binary outcomes from a BT model
(bench/aggregators_bench.py's ``instance``), k = 50, 100, 200, all ordered pairs and 10 %. The figure is the median
over reps of (other time / this checkout's time): >= 1 means this checkout is at least as fast. The scores and
standard errors of both revisions are compared too (largest absolute difference).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import choix
import numpy as np
from aggregators_bench import CHOIX_ALPHA, DENSITIES, KS, instance, one_thread
from bench_common import interleaved, machine, median_ratio, write_results

from rerank.aggregation.aggregators import bt
from rerank.aggregation.aggregators._common import win_matrix

SOURCE = "aggregation/aggregators/bt.py"


def revision(ref: str) -> ModuleType:
    """``bt.py`` as it was at git ``ref``, imported as a sibling of today's (its relative imports resolve)."""
    text = subprocess.run(["git", "show", f"{ref}:{SOURCE}"], capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="bt-baseline-")) / "bt.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("rerank.aggregation.aggregators._bt_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git revision to compare with")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--reps", type=int, default=21)
    args = parser.parse_args()
    old = revision(args.baseline)
    start, rows = machine(), []
    for k in KS:
        for density in DENSITIES:
            c = instance(k, density, True, seed=k)
            W, _ = win_matrix(c)
            ours, theirs = bt.bradley_terry(c, alpha=2 * CHOIX_ALPHA), old.bradley_terry(c, alpha=2 * CHOIX_ALPHA)
            times = interleaved({
                "this checkout": lambda c=c: bt.bradley_terry(c, alpha=2 * CHOIX_ALPHA),
                f"at {args.baseline}": lambda c=c: old.bradley_terry(c, alpha=2 * CHOIX_ALPHA),
                "choix.ilsr_pairwise_dense": one_thread(lambda W=W: choix.ilsr_pairwise_dense(W, alpha=CHOIX_ALPHA), k),
            }, args.reps, max(1, 400 // k))
            row = {"k": k, "density": density, "ms": 1000 * float(np.median(times["this checkout"])),
                   "baseline_ratio": median_ratio(times[f"at {args.baseline}"], times["this checkout"]),
                   "choix_ratio": median_ratio(times["choix.ilsr_pairwise_dense"], times["this checkout"]),
                   "max_abs_diff_scores": float(np.abs(ours.scores - theirs.scores).max()),
                   "max_abs_diff_stderr": float(np.abs(ours.stderr - theirs.stderr).max())}
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    end = machine()
    lines = ["# Bradley-Terry fit: this checkout vs an earlier revision and choix", "",
             f"Command: `.venv/bin/python bench/bt_fit_bench.py --baseline {args.baseline} --out {args.out} "
             f"--reps {args.reps}`. Ratio = median over interleaved reps of (other time / this checkout's time). "
             f"Load average at start {start['loadavg']}, at end {end['loadavg']} (other work on the same 2 cores).",
             "", f"| k | pairs | this checkout ms | at {args.baseline} / this | choix (1 thread) / this | "
             "max diff scores | max diff stderr |", "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['k']} | {r['density']:.0%} | {r['ms']:.2f} | {r['baseline_ratio']:.2f} | {r['choix_ratio']:.2f} "
              f"| {r['max_abs_diff_scores']:.1e} | {r['max_abs_diff_stderr']:.1e} |" for r in rows]
    write_results(args.out, "bt_fit", {"machine": start, "end": end, "reps": args.reps,
                                       "baseline": args.baseline, "rows": rows}, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
