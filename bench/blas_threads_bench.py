"""BLAS threads in shipped commands: the engine's fit in the default environment against a forced single thread.

    .venv/bin/python bench/blas_threads_bench.py --out bench/results --reps 15

Three long-lived worker processes run the engine path of ``rerank aggregate`` / ``rank`` / ``serve``
(``aggregate(comparisons, "bt", "symmetric")``: diagnostics, calibration, Bradley-Terry with standard
errors) on all ordered pairs of k items:
- ``default``: the environment as a user has it (OpenBLAS: one thread per core);
- ``forced-1``: ``OPENBLAS_NUM_THREADS=1`` (what the benchmarks used to set by hand);
- ``no-control``: the default environment with the engine's own thread choice switched off
  (``SINGLE_THREAD_MAX_ITEMS = 0``), i.e. the behaviour before aggregation/threads.py.
Each rep asks every worker in turn (rotating order) for a batch of fits and takes its time per fit; the
figure is the median over reps of (forced-1 time / default time). Goal (issue 15): >= 0.95 at k = 100, 200.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_common import machine, median_ratio, write_results

KS = (100, 200)
GOAL = 0.95


def worker(no_control: bool) -> int:
    import numpy as np

    from rerank.aggregation import Comparisons, threads
    from rerank.aggregation.engine import aggregate

    if no_control:
        threads.SINGLE_THREAD_MAX_ITEMS = 0
    cases = {}
    for k in KS:
        rng = np.random.default_rng(k)
        a, b = np.nonzero(~np.eye(k, dtype=bool))
        cases[k] = Comparisons(k, a, b, rng.random(len(a)))
        aggregate(cases[k], "bt", "symmetric")
    for line in sys.stdin:
        k, inner = (int(x) for x in line.split())
        t0 = time.perf_counter()
        for _ in range(inner):
            aggregate(cases[k], "bt", "symmetric")
        print((time.perf_counter() - t0) / inner, flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--worker", choices=["control", "no-control"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker == "no-control")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    setups = {"default": (env, "control"), "forced-1": ({**env, "OPENBLAS_NUM_THREADS": "1"}, "control"),
              "no-control": (env, "no-control")}
    procs = {name: subprocess.Popen([sys.executable, __file__, "--worker", mode], env=e, text=True,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for name, (e, mode) in setups.items()}
    start = machine()
    times: dict[int, dict[str, list[float]]] = {k: {name: [] for name in procs} for k in KS}
    names = list(procs)
    for rep in range(args.reps):
        for k in KS:
            for name in names[rep % 3:] + names[: rep % 3]:
                proc = procs[name]
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(f"{k} {max(1, 2000 // k)}\n")
                proc.stdin.flush()
                times[k][name].append(float(proc.stdout.readline()))
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    end = machine()
    rows = {str(k): {"median_ms": {n: 1000 * statistics.median(t) for n, t in times[k].items()},
                     "forced1_over_default": median_ratio(times[k]["forced-1"], times[k]["default"]),
                     "forced1_over_no_control": median_ratio(times[k]["forced-1"], times[k]["no-control"])}
            for k in KS}
    lines = ["# BLAS threads: default environment against a forced single thread", "",
             f"Command: `.venv/bin/python bench/blas_threads_bench.py --out bench/results --reps {args.reps}`; "
             "engine path (diagnostics + symmetric + Bradley-Terry with standard errors), all ordered pairs, "
             "three worker processes interleaved; ratio = median over reps of (forced-1 time / other time), "
             f"goal >= {GOAL} for default. Load average at start {start['loadavg']}, at end {end['loadavg']} "
             "(other engineers' jobs on the same 2 cores).", "",
             "| k | default ms | forced-1 ms | no-control ms | forced-1 / default | forced-1 / no-control |",
             "| --- | --- | --- | --- | --- | --- |"]
    for k, r in rows.items():
        m = r["median_ms"]
        lines.append(f"| {k} | {m['default']:.2f} | {m['forced-1']:.2f} | {m['no-control']:.2f} | "
                     f"{r['forced1_over_default']:.2f} | {r['forced1_over_no_control']:.2f} |")
    worst = min(r["forced1_over_default"] for r in rows.values())
    lines += ["", f"Worst forced-1 / default: {worst:.2f} ({'met' if worst >= GOAL else 'NOT met'})."]
    write_results(args.out, "blas_threads", {"machine": start, "end": end, "reps": args.reps, "rows": rows,
                                             "goal": GOAL}, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
