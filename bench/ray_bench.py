"""`rerank rank --engine ray` against `--engine local` on the same DL19 queries: wall time (Ray's start-up and
each actor's model load included), queries/s, and whether the outputs are equal query by query.

    .venv/bin/python bench/ray_bench.py --out bench/results [--queries 20 --depth 30 --workers 2]

Writes ray_rank.json and ray_rank.md under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import add_out_and_data

from rerank.evaluation import read_run


def blocks(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        out.setdefault(line.split()[0], []).append(line)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_out_and_data(parser)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default="minilm")
    args = parser.parse_args()

    dl = Path(args.data) / "trec-dl-2019-passage"
    run = read_run(dl / "run.bm25.top100.trec")
    folder = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    small = folder / "run.trec"
    small.write_text("".join(f"{q} Q0 {d} {i} {s} bm25\n" for q in sorted(run)[: args.queries]
                             for i, (d, s) in enumerate(sorted(run[q].items(), key=lambda x: -x[1]), start=1)))
    base = [sys.executable, "-m", "rerank.cli", "rank", "--run", str(small), "--corpus", str(dl / "corpus.jsonl"),
            "--queries", str(dl / "queries.tsv"), "--depth", str(args.depth), "--model", args.model]
    engines = {"local": [], f"ray, {args.workers} workers": ["--engine", "ray", "--workers", str(args.workers)]}
    rows = {}
    for name, extra in engines.items():
        out = folder / f"{name.split(',')[0]}.trec"
        t0 = time.perf_counter()
        proc = subprocess.run([*base, "--output", str(out), *extra], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed: {proc.stderr[-2000:]}")
        rows[name] = {"seconds": wall, "queries_per_s": args.queries / wall,
                      "progress": [x for x in proc.stderr.splitlines() if x.startswith("rerank: queries")][-1]}
        print(f"{name}: {wall:.1f} s", file=sys.stderr)
    outputs = [blocks(folder / f"{n.split(',')[0]}.trec") for n in engines]
    equal = outputs[0] == outputs[1]
    meta = {"command": "python bench/ray_bench.py " + " ".join(sys.argv[1:]), "queries": args.queries,
            "depth": args.depth, "model": args.model, "cpus": os.cpu_count(), "load_average": os.getloadavg(),
            "equal_query_by_query": equal}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ray_rank.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    local, ray = rows.values()
    lines = [f"# `rerank rank`: local engine vs Ray ({args.workers} workers) on {args.queries} DL19 queries", "",
             f"Command: `{meta['command']}`; model {args.model}, all pairs of the BM25 top {args.depth}; "
             f"{meta['cpus']} CPUs, load average at the end {meta['load_average'][0]:.1f}. Wall time of the whole "
             "command (Ray's start-up and each actor's model load included).", "",
             "| engine | seconds | queries/s | last progress line |", "| --- | --- | --- | --- |"]
    lines += [f"| {n} | {r['seconds']:.1f} | {r['queries_per_s']:.2f} | `{r['progress']}` |" for n, r in rows.items()]
    lines += ["", f"Ray / local wall time: {ray['seconds'] / local['seconds']:.2f}; outputs equal query by query: "
              f"{'yes' if equal else 'NO'}."]
    (out_dir / "ray_rank.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
