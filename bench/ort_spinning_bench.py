"""ONNX Runtime intra-op spinning on a served model: the model work of one burst of 8 requests, with and without.

    .venv/bin/python bench/ort_spinning_bench.py --k 50 --reps 3 --out bench/results

The server's default model (MiniLM as ``rerank serve`` loads it, ``app.load_models``; embedding cache off) is
loaded twice, once with intra-op spinning (ONNX Runtime's default) and once without (the server's default,
``ServerConfig.ort_spinning``). Per rep, in rotating order, each model answers the comparisons (all ordered
pairs) of 8 DL19 queries' BM25 top-k two ways: ``merged``, one ``compare_batch`` of all 8 requests (what the
server's batching worker runs for a burst), and ``concurrent``, 8 threads with one request each (what 8
in-process callers run). Reported: wall seconds and the process's CPU seconds of each, median over reps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from bench_common import machine, write_results

from rerank.server.app import load_models, ort_spinning
from rerank.server.config import ServerConfig
from rerank.server.loadbench import data_folder, load_requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    if os.environ.get("RERANK_ORT_SPINNING"):
        parser.error("unset RERANK_ORT_SPINNING: the benchmark sets spinning per model")
    k = args.k
    requests = load_requests(data_folder(None), k)[:8]
    jobs = [[(r.query, r.texts[a], r.texts[b]) for a in range(k) for b in range(k) if a != b] for r in requests]
    config = ServerConfig(model_options={"minilm": {"cache_items": 0}})
    models = {}
    for spin in (True, False):
        with ort_spinning(spin):  # the server's loader; the setting only reaches sessions made inside
            models["spin" if spin else "no-spin"] = load_models(config)["minilm"]

    def concurrent(model, groups):
        threads = [threading.Thread(target=model.compare_batch, args=(g,)) for g in groups]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    cases = {
        f"{name} {how}": (lambda m=model, how=how: m.compare_batch([it for j in jobs for it in j])
                          if how == "merged" else concurrent(m, jobs))
        for name, model in models.items() for how in ("merged", "concurrent")
    }  # fmt: skip
    start = machine()
    runs: list[dict] = []
    names = list(cases)
    for rep in range(args.reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            load, cpu0, t0 = os.getloadavg()[0], time.process_time(), time.perf_counter()
            cases[name]()
            runs.append({"rep": rep + 1, "case": name, "wall_s": round(time.perf_counter() - t0, 3),
                         "cpu_s": round(time.process_time() - cpu0, 3), "loadavg": round(load, 2)})
            print(runs[-1], flush=True)
    summary = {
        name: {key: statistics.median(r[key] for r in runs if r["case"] == name) for key in ("wall_s", "cpu_s")}
        for name in names
    }
    end = machine()
    command = "python bench/ort_spinning_bench.py " + " ".join(sys.argv[1:])
    lines = [
        "# ONNX Runtime intra-op spinning on a served model",
        "",
        f"Command: `{command}` ({start['utc']}). 8 DL19 queries, BM25 top {k}, all ordered pairs "
        f"({len(jobs[0]):,} comparisons, {k + 1} texts per request); MiniLM as the server loads it "
        f"(`{models['no-spin']!r}`), embedding cache off. Load average (1, 5, 15 min) at the start "
        f"{start['loadavg']}, at the end {end['loadavg']}, on {start['cores']} cores.",
        "`merged`: one call of the 8 requests (the server's batching worker on a burst); `concurrent`: 8 threads, "
        "one request each (8 in-process callers). CPU: the process's CPU seconds during the case.",
        "",
        "| case | wall s (median) | CPU s (median) | per rep wall / CPU |",
        "| --- | ---: | ---: | --- |",
    ]
    for name in names:
        reps = ", ".join(f"{r['wall_s']:.1f} / {r['cpu_s']:.1f}" for r in runs if r["case"] == name)
        lines.append(f"| {name} | {summary[name]['wall_s']:.2f} | {summary[name]['cpu_s']:.2f} | {reps} |")
    data = {"command": command, "k": k, "start": start, "end": end, "summary": summary, "runs": runs}
    write_results(Path(args.out), "ort_spinning", data, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
