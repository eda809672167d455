"""CPU throughput of the pairwise models: ONNX Runtime fp32 / int8 vs torch eager fp32 / bf16, side by side.

    .venv/bin/python bench/models_bench.py --out bench/results            # writes models_cpu.md and .json

Workloads (one run measures every backend on the same inputs, in turn, on the same threads):
- ``minilm`` bi-encoder (the embedded all-MiniLM-L6-v2), k = 100: one call = one TREC DL 2019 query with its
  BM25 top 100 passages, all k(k-1) = 9,900 ordered pairs, which cost k + 1 = 101 encodings (query budget 64
  tokens, passage budget 254). Figures: pairs/s and encodings/s.
- duo cross-encoder of MiniLM size (the MiniLM encoder weights + a random single-logit head; speed only, the
  scores mean nothing), 256 tokens, batch 32: one call = 32 pairs, every sequence exactly 256 tokens
  (query budget 32, passage budget 110; the texts are TREC DL passages, long enough to be cut).
  Figure: pairs/s.

Threads: ONNX Runtime intra-op threads and ``torch.set_num_threads`` are both the physical core count. The
exported models are cached under ``bench/cache/models`` (git-ignored). The agreement columns compare each
backend's p with torch fp32 on the measured inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

from rerank.models import ModelStore, ensure_embedded, export_model, load_model  # noqa: E402
from rerank.models.runtime import physical_cores  # noqa: E402
from rerank.models.testing import build_minilm_cross_encoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RERANK_DATA", ROOT.parent / "shared" / "data")) / "trec-dl-2019-passage"
BACKENDS = [("onnx", "fp32"), ("onnx", "int8"), ("torch", "fp32"), ("torch", "bf16")]
CE_NAME = "minilm-duo-ce-bench"
CE_BUDGETS = {"max_query_tokens": 32, "max_passage_tokens": 110}  # 1 + 32 + 1 + 110 + 1 + 110 + 1 = 256


def load_dl19(n_queries: int, k: int) -> list[tuple[str, list[str]]]:
    corpus = {}
    with open(DATA / "corpus.jsonl") as fh:
        for line in fh:
            doc = json.loads(line)
            corpus[doc["id"]] = doc["text"]
    with open(DATA / "queries.tsv") as fh:
        queries = dict(line.rstrip("\n").split("\t", 1) for line in fh)
    run: dict[str, list[str]] = {}
    with open(DATA / "run.bm25.top100.trec") as fh:
        for line in fh:
            qid, _, did, *_ = line.split()
            run.setdefault(qid, []).append(did)
    out = []
    for qid, docs in run.items():
        if len(docs) >= k and qid in queries:
            out.append((queries[qid], [corpus[d] for d in docs[:k]]))
        if len(out) == n_queries:
            break
    return out


def load(name: str, backend: str, precision: str, store: ModelStore):
    if backend == "onnx":
        return load_model(name, store=store, variant=precision)
    return load_model(name, backend="torch", store=store, dtype=precision)


def stage_split(result) -> dict:
    s = result.stats
    return {"tokenize_s": s.tokenize_s, "run_s": s.run_s, "postprocess_s": s.postprocess_s}


def with_agreement(rows: list[dict], ps: list[np.ndarray]) -> list[dict]:
    """Add max/mean |p - p(torch fp32)| to each row (same inputs, same order)."""
    ref = ps[BACKENDS.index(("torch", "fp32"))]
    for row, p in zip(rows, ps, strict=True):
        row["max_abs_diff_p_vs_torch_fp32"] = float(np.max(np.abs(p - ref)))
        row["mean_abs_diff_p_vs_torch_fp32"] = float(np.mean(np.abs(p - ref)))
    return rows


def timed(fn, reps: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def bench_bi_encoder(store: ModelStore, n_queries: int, k: int, reps: int) -> list[dict]:
    ensure_embedded("minilm", store=store, quantize="int8")
    calls = load_dl19(n_queries, k)
    pairs_per_call = k * (k - 1)
    rows, ps = [], []
    for backend, precision in BACKENDS:
        model = load("minilm", backend, precision, store)
        requests = [[(q, a, b) for a in docs for b in docs if a is not b] for q, docs in calls]

        def run_all(model=model, requests=requests):
            return [model.compare_batch(items) for items in requests]

        results = run_all()
        ps.append(np.concatenate([r.p for r in results]))
        times = [t / len(calls) for t in timed(run_all, reps)]
        sec = statistics.median(times)
        rows.append(
            {
                "workload": f"minilm bi-encoder, k={k}",
                "backend": backend,
                "precision": precision,
                "provider": model.provider,
                "seconds_per_call": sec,
                "pairs_per_s": pairs_per_call / sec,
                "sequences_per_s": results[0].stats.sequences / sec,
                "sequences_per_call": results[0].stats.sequences,
                "mean_tokens_per_sequence": results[0].stats.tokens / results[0].stats.sequences,
                "calls": len(calls),
                "reps": reps,
                **stage_split(results[0]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return with_agreement(rows, ps)


def bench_cross_encoder(store: ModelStore, batch: int, reps: int, cache: Path) -> list[dict]:
    if CE_NAME not in store.names():
        src = build_minilm_cross_encoder(cache / "minilm-ce-source")
        out = store.path(CE_NAME)
        export_model(src, "duo-cross-encoder", out, name=CE_NAME, quantize="int8", **CE_BUDGETS)
    calls = load_dl19(1, 100)
    query, docs = calls[0]
    long_query = " ".join([query, *docs[:3]])
    passages = [" ".join(docs[i : i + 3]) for i in range(0, 3 * batch, 3)]
    items = [(long_query, passages[i], passages[(i + 1) % batch]) for i in range(batch)]
    rows, ps = [], []
    for backend, precision in BACKENDS:
        model = load(CE_NAME, backend, precision, store)
        prepared = model.prepare(items)
        lengths = {len(s) for s in prepared.input_ids}
        assert lengths == {256}, f"sequences are not all 256 tokens: {sorted(lengths)}"
        result = model.compare_batch(items)
        assert result.stats.batches == 1
        ps.append(result.p)
        sec = statistics.median(timed(lambda model=model: model.compare_batch(items), reps))
        rows.append(
            {
                "workload": f"duo cross-encoder (MiniLM size), 256 tokens, batch {batch}",
                "backend": backend,
                "precision": precision,
                "provider": model.provider,
                "seconds_per_call": sec,
                "pairs_per_s": batch / sec,
                "sequences_per_s": batch / sec,
                "sequences_per_call": batch,
                "mean_tokens_per_sequence": 256.0,
                "calls": 1,
                "reps": reps,
                **stage_split(result),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return with_agreement(rows, ps)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write(out: Path, rows: list[dict], meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "models_cpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        "# Pairwise models on CPU: ONNX Runtime vs torch eager",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['cpu']}, {meta['physical_cores']} physical cores ({meta['logical_cpus']} logical); "
        f"threads: ORT intra-op {meta['threads']}, torch {meta['threads']}.  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}.  ",
        "Median over reps after one warm-up. Agreement: p against torch fp32 on the same inputs.",
        "The machine was shared with other jobs while this ran; treat differences under ~15% as noise.",
        "",
    ]
    for workload in dict.fromkeys(r["workload"] for r in rows):
        lines += [
            f"## {workload}",
            "",
            "| backend | precision | provider | s / call | pairs/s | sequences/s | speed-up vs torch fp32 "
            "| max abs dp | mean abs dp |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        group = [r for r in rows if r["workload"] == workload]
        base = next(r for r in group if r["backend"] == "torch" and r["precision"] == "fp32")
        for r in group:
            lines.append(
                f"| {r['backend']} | {r['precision']} | {r['provider']} | {r['seconds_per_call']:.3f} | "
                f"{r['pairs_per_s']:,.0f} | {r['sequences_per_s']:,.1f} | "
                f"{base['seconds_per_call'] / r['seconds_per_call']:.2f}x | "
                f"{r['max_abs_diff_p_vs_torch_fp32']:.2g} | {r['mean_abs_diff_p_vs_torch_fp32']:.2g} |"
            )
        first = group[0]
        lines += [
            "",
            f"{first['sequences_per_call']} sequences per call, {first['mean_tokens_per_sequence']:.0f} "
            f"tokens per sequence on average; {first['calls']} call(s) per rep, {first['reps']} reps. "
            f"Stage split of one {first['backend']} {first['precision']} call: tokenize "
            f"{first['tokenize_s']:.3f} s, run {first['run_s']:.3f} s, "
            f"postprocess {first['postprocess_s']:.3f} s.",
            "",
        ]
    (out / "models_cpu.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "cache")
    parser.add_argument("--queries", type=int, default=2, help="bi-encoder: DL19 queries per rep")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--part", choices=["all", "bi-encoder", "cross-encoder"], default="all")
    args = parser.parse_args(argv)

    import torch

    threads = physical_cores()
    torch.set_num_threads(threads)
    os.environ["RERANK_ORT_THREADS"] = str(threads)
    store = ModelStore(args.cache / "models")
    rows: list[dict] = []
    if args.part in ("all", "bi-encoder"):
        rows += bench_bi_encoder(store, args.queries, args.k, args.reps)
    if args.part in ("all", "cross-encoder"):
        rows += bench_cross_encoder(store, args.batch, args.reps, args.cache)
    import onnxruntime
    import transformers

    meta = {
        "command": "python bench/models_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpu": cpu_name(),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "versions": {
            "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
    }
    write(args.out, rows, meta)
    print(f"wrote {args.out / 'models_cpu.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
