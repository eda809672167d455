"""Scheduler overlap on vs off on CPU: pairs/s of the duo cross-encoder (MiniLM size, ONNX Runtime, CPU
default batching) under 8 concurrent requests, each sending rounds of 32 DL 2019 comparisons.

Both modes run in one process, interleaved (off, on, off, on, ...), on the same loaded model; the figure is
the median of the per-rep ratios on / off. The load average at the start and the end is written beside the
figures (the machine is shared). ``python bench/scheduler_overlap_bench.py --out bench/results``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_common import machine, median_ratio
from bench.effectiveness_bench import DATA
from rerank.evaluation import read_corpus, read_queries, read_run
from rerank.evaluation.trec import rank_docs
from rerank.models import export_model, load_model
from rerank.models.testing import build_minilm_cross_encoder
from rerank.server.scheduler import BatchScheduler, Ticket

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / "cache" / "overlap"
CONCURRENCY = 8
ROUND = 32


def workloads(rounds: int) -> list[list[list[tuple[str, str, str]]]]:
    corpus, queries = read_corpus(DATA / "corpus.jsonl"), read_queries(DATA / "queries.tsv")
    run = read_run(DATA / "run.bm25.top100.trec")
    out = []
    for qid in list(run)[:CONCURRENCY]:
        docs = [corpus[d] for d in rank_docs(run[qid])[:20]]
        pairs = [(queries[qid], a, b) for a in docs for b in docs if a is not b]
        out.append([pairs[r * ROUND : (r + 1) * ROUND] for r in range(rounds)])
    return out


def measure(model, overlap: bool, jobs) -> float:
    sched = BatchScheduler(model, "ce", max_batch_items=256, max_wait_s=0.002, overlap=overlap)
    sched.start()
    try:
        def client(rounds):
            for items in rounds:
                sched.submit(Ticket(), items)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(client, jobs))
        seconds = time.perf_counter() - t0
    finally:
        sched.stop()
    return sum(len(r) for rounds in jobs for r in rounds) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 32 comparisons per request")
    args = parser.parse_args()
    folder = CACHE / "ce-onnx"
    if not (folder / "manifest.json").is_file():
        src = build_minilm_cross_encoder(CACHE / "ce-src")
        export_model(src, "duo-cross-encoder", folder, max_query_tokens=32, max_passage_tokens=110, overwrite=True)
    model = load_model(folder)
    jobs = workloads(args.rounds)
    measure(model, False, [j[:1] for j in jobs])  # warm-up
    rates: dict[str, list[float]] = {"off": [], "on": []}
    start = machine()
    for _ in range(args.reps):
        for mode in ("off", "on"):
            rates[mode].append(measure(model, mode == "on", jobs))
            print(json.dumps({mode: rates[mode][-1]}), flush=True)
    end = machine()
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    ratio = median_ratio(rates["on"], rates["off"])
    result = {"provider": model.provider, "variant": model.variant, "concurrency": CONCURRENCY,
              "round": ROUND, "rounds": args.rounds, "pairs_per_s": rates, "ratio_on_off": ratio,
              "machine": start, "end": end}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scheduler_overlap.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "scheduler_overlap.md").write_text(
        "# Scheduler overlap on vs off (`python bench/scheduler_overlap_bench.py --out bench/results "
        f"--reps {args.reps} --rounds {args.rounds}`)\n\n"
        f"Duo cross-encoder (MiniLM size, 256-token sequences), {model.provider} {model.variant}, "
        f"{CONCURRENCY} concurrent requests x {args.rounds} rounds of {ROUND} comparisons, {args.reps} "
        f"interleaved repetitions. Load average at start {start['loadavg']}, at end {end['loadavg']} (a shared "
        f"{start['cores']}-core machine).\n\n"
        f"| mode | pairs/s (median) | runs |\n| --- | ---: | --- |\n"
        f"| off | {off:.1f} | {', '.join(f'{x:.1f}' for x in rates['off'])} |\n"
        f"| on | {on:.1f} | {', '.join(f'{x:.1f}' for x in rates['on'])} |\n\n"
        f"Ratio on / off (median of the per-rep ratios): **{ratio:.2f}**.\n"
    )
    print(json.dumps({"ratio_on_off": ratio}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
