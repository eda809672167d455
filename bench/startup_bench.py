"""Start-up cost of trivial commands against ``python -c "import numpy"``, interleaved.

    .venv/bin/python bench/startup_bench.py --out bench/results --reps 15

Each rep runs every command once as a fresh process, in rotating order; the figure is the median over
reps of (command wall time) / (``python -c "import numpy"`` wall time). Goal (issue 15): <= 2.5.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from bench_common import interleaved, machine, median_ratio, write_results

GOAL = 2.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    rerank = str(Path(sys.executable).with_name("rerank"))
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import numpy"': [sys.executable, "-c", "import numpy"],
        "rerank --help": [rerank, "--help"],
        "rerank aggregate --method nope": [rerank, "aggregate", "--method", "nope"],
        "rerank rank --budget lots": [rerank, "rank", "--budget", "lots"],
    }

    def runner(argv: list[str]):
        return lambda: subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    before = machine()
    times = interleaved({name: runner(argv) for name, argv in commands.items()}, args.reps)
    base = times['python -c "import numpy"']
    rows = {name: {"median_s": statistics.median(t), "ratio_to_numpy": median_ratio(t, base)}
            for name, t in times.items()}
    lines = ["# Start-up of trivial commands", "",
             f"Command: `.venv/bin/python bench/startup_bench.py --out bench/results --reps {args.reps}`; "
             "fresh processes, interleaved; ratio = median over reps of (command / `python -c \"import numpy\"`). "
             f"Goal: <= {GOAL}. Load average at start {before['loadavg']} (other engineers' jobs on the "
             "same 2 cores).", "",
             "| command | median s | ratio to import numpy |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | {r['median_s']:.3f} | {r['ratio_to_numpy']:.2f} |" for name, r in rows.items()]
    worst = max(r["ratio_to_numpy"] for name, r in rows.items() if name.startswith("rerank"))
    lines += ["", f"Worst rerank command: {worst:.2f}x ({'met' if worst <= GOAL else 'NOT met'})."]
    write_results(args.out, "startup", {"machine": before, "after": machine(), "reps": args.reps, "rows": rows,
                                        "goal": GOAL, "worst_ratio": worst}, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
