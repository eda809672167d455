"""CPU throughput of the pairwise models, every backend side by side: ONNX Runtime (fused fp32, fused int8,
and the unfused graphs of the previous export path) vs torch eager fp32 / bf16.

    .venv/bin/python bench/models_bench.py --out bench/results            # writes models_cpu.md and .json

Workloads (one run measures every configuration on the same inputs, on the same threads):
- ``minilm`` bi-encoder (the embedded all-MiniLM-L6-v2), k = 100: one call = one TREC DL 2019 query with its
  BM25 top 100 passages, all k(k-1) = 9,900 ordered pairs, which cost k + 1 = 101 encodings (query budget 64
  tokens, passage budget 254). Figures: pairs/s and encodings/s.
- duo cross-encoder of MiniLM size (the MiniLM encoder weights + a random single-logit head; speed only, the
  scores mean nothing), 256 tokens, batch 32: one call = 32 pairs, every sequence exactly 256 tokens
  (query budget 32, passage budget 110; the texts are TREC DL passages, long enough to be cut).
  Figure: pairs/s.

Configurations (``CONFIGS``): ``onnx fp32`` is the graph as exported now (fused offline by ONNX Runtime's
transformer optimizer), ``onnx int8`` its dynamic int8 quantization, both at the runtime's CPU default of
one sequence per backend call; ``batch64`` runs up to 64 length-sorted sequences per call (the previous
default); ``onnx fp32 unfused`` is an export with ``optimize=False`` (plain ``torch.onnx.export`` graph,
ORT's own session-level optimization only); ``onnx fp32 no-spin`` is the fused graph with
``session.intra_op.allow_spinning=0``; torch eager runs the export's wrapper module with SDPA attention, 8
sequences per call (its CPU default) or 64. The sequence cache of the bi-encoder is off everywhere.

Timing: every configuration is loaded and warmed up first; then the reps go round-robin over the
configurations (rep 1 of each, rep 2 of each, ...) so that load from other jobs on a shared machine spreads
over all of them; the figure is the median. ONNX Runtime intra-op threads and ``torch.set_num_threads`` are
both the physical core count; one inter-op thread. Exports are cached under ``bench/cache/models``
(git-ignored). The agreement columns compare each configuration's p with torch fp32 on the measured inputs.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

from rerank.models import ModelStore, ensure_embedded, export_model, load_model  # noqa: E402
from rerank.models.runtime import cpu_name, physical_cores  # noqa: E402
from rerank.models.testing import build_minilm_cross_encoder, minilm_source  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RERANK_DATA", ROOT.parent / "shared" / "data")) / "trec-dl-2019-passage"
CE_NAME = "minilm-duo-ce-bench"
CE_BUDGETS = {"max_query_tokens": 32, "max_passage_tokens": 110}  # 1 + 32 + 1 + 110 + 1 + 110 + 1 = 256
UNFUSED = "-unfused"

# label -> (backend, load_model keyword arguments, store-name suffix)
# Every configuration runs without the bi-encoder's sequence cache (the reps repeat the same texts).
CONFIGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "onnx fp32": ("onnx", {"variant": "fp32"}, ""),
    "onnx int8": ("onnx", {"variant": "int8"}, ""),
    "onnx fp32 batch64": ("onnx", {"variant": "fp32", "max_batch_size": 64}, ""),
    "onnx int8 batch64": ("onnx", {"variant": "int8", "max_batch_size": 64}, ""),
    "onnx fp32 unfused": ("onnx", {"variant": "fp32"}, UNFUSED),
    "onnx fp32 no-spin": ("onnx", {"variant": "fp32", "spinning": False}, ""),
    "torch fp32": ("torch", {"dtype": "float32"}, ""),
    "torch fp32 batch64": ("torch", {"dtype": "float32", "max_batch_size": 64}, ""),
    "torch bf16": ("torch", {"dtype": "bfloat16"}, ""),
}
REFERENCE = "torch fp32"


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


def _fresh(store: ModelStore, name: str, optimized: bool) -> bool:
    """True when ``name`` is exported with both variants and with (or without) the fused graph."""
    if name not in store:
        return False
    manifest = store.manifest(name)
    if not {"fp32", "int8"} <= set(manifest.variants):
        return False
    graph = manifest.variants["fp32"].graph
    return graph is not None and (graph.get("optimizer") is not None) == optimized


def prepare_models(store: ModelStore, cache: Path, workload: str) -> str:
    """Export (once) the fused and the unfused variants of a workload's model; returns its store name."""
    if workload == "bi-encoder":
        name = "minilm"
        if not _fresh(store, name, True):
            ensure_embedded(name, store=store, quantize="int8", force=True)
        if not _fresh(store, name + UNFUSED, False):
            export_model(
                minilm_source(), "bi-encoder", store.path(name + UNFUSED), name=name + UNFUSED,
                quantize="int8", optimize=False, overwrite=True,
            )
        return name
    src = cache / "minilm-ce-source"
    if not (src / "config.json").is_file():
        build_minilm_cross_encoder(src)
    for suffix, optimized in (("", True), (UNFUSED, False)):
        if not _fresh(store, CE_NAME + suffix, optimized):
            export_model(
                src, "duo-cross-encoder", store.path(CE_NAME + suffix), name=CE_NAME + suffix,
                quantize="int8", optimize=optimized, overwrite=True, **CE_BUDGETS,
            )
    return CE_NAME


def load(name: str, label: str, store: ModelStore):
    backend, kwargs, suffix = CONFIGS[label]
    kwargs = dict(kwargs)
    spinning = kwargs.pop("spinning", None)
    kwargs["cache_items"] = 0
    if backend == "onnx":
        model = load_model(name + suffix, store=store, **kwargs)
        if spinning is not None:
            from rerank.models.runtime import OnnxBackend

            model.backend = OnnxBackend(
                model.backend.path, output=model.spec.output, spinning=spinning
            )
        return model
    return load_model(name, backend="torch", store=store, **kwargs)


def measure(
    configs: list[str], run: Callable[[Any], Any], models: dict[str, Any], reps: int
) -> dict[str, list[float]]:
    """Warm up each model, then ``reps`` timed rounds going round-robin over the configurations."""
    for label in configs:
        run(models[label])
    times: dict[str, list[float]] = {label: [] for label in configs}
    for _ in range(reps):
        for label in configs:
            t0 = time.perf_counter()
            run(models[label])
            times[label].append(time.perf_counter() - t0)
    return times


def rows_for(
    workload: str, configs: list[str], models: dict, results: dict, times: dict, per_call: dict
) -> list[dict]:
    ref = results[REFERENCE]
    rows = []
    for label in configs:
        sec = statistics.median(times[label]) / per_call["calls"]
        p = results[label]
        stats = per_call["stats"][label]
        rows.append(
            {
                "workload": workload,
                "config": label,
                "backend": CONFIGS[label][0],
                "provider": models[label].provider,
                "variant": models[label].variant,
                "seconds_per_call": sec,
                "seconds_per_call_min": min(times[label]) / per_call["calls"],
                "pairs_per_s": per_call["pairs"] / sec,
                "sequences_per_s": stats.sequences / sec,
                "sequences_per_call": stats.sequences,
                "mean_tokens_per_sequence": stats.tokens / stats.sequences,
                "calls": per_call["calls"],
                "reps": len(times[label]),
                "tokenize_s": stats.tokenize_s,
                "run_s": stats.run_s,
                "postprocess_s": stats.postprocess_s,
                "max_abs_diff_p_vs_torch_fp32": float(np.max(np.abs(p - ref))),
                "mean_abs_diff_p_vs_torch_fp32": float(np.mean(np.abs(p - ref))),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_bi_encoder(store: ModelStore, cache: Path, configs: list[str], n_queries: int, k: int, reps: int):
    name = prepare_models(store, cache, "bi-encoder")
    calls = load_dl19(n_queries, k)
    requests = [[(q, a, b) for a in docs for b in docs if a is not b] for q, docs in calls]
    models = {label: load(name, label, store) for label in configs}
    results, stats = {}, {}
    for label in configs:
        out = [models[label].compare_batch(items) for items in requests]
        results[label] = np.concatenate([r.p for r in out])
        stats[label] = out[0].stats
    times = measure(configs, lambda m: [m.compare_batch(items) for items in requests], models, reps)
    per_call = {"calls": len(calls), "pairs": k * (k - 1), "stats": stats}
    return rows_for(f"minilm bi-encoder, k={k}", configs, models, results, times, per_call)


def bench_cross_encoder(store: ModelStore, cache: Path, configs: list[str], batch: int, reps: int):
    name = prepare_models(store, cache, "cross-encoder")
    query, docs = load_dl19(1, 100)[0]
    long_query = " ".join([query, *docs[:3]])
    passages = [" ".join(docs[i : i + 3]) for i in range(0, 3 * batch, 3)]
    items = [(long_query, passages[i], passages[(i + 1) % batch]) for i in range(batch)]
    models = {label: load(name, label, store) for label in configs}
    results, stats = {}, {}
    for label in configs:
        model = models[label]
        lengths = {len(s) for s in model.prepare(items).input_ids}
        assert lengths == {256}, f"sequences are not all 256 tokens: {sorted(lengths)}"
        result = model.compare_batch(items)
        assert result.stats.batches == -(-batch // model.options.max_batch_size)
        results[label], stats[label] = result.p, result.stats
    times = measure(configs, lambda m: m.compare_batch(items), models, reps)
    per_call = {"calls": 1, "pairs": batch, "stats": stats}
    workload = f"duo cross-encoder (MiniLM size), 256 tokens, batch {batch}"
    return rows_for(workload, configs, models, results, times, per_call)


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
        f"Load average before the run: {meta['loadavg_before']}; after: {meta['loadavg_after']}.  ",
        "Median over reps (round-robin over the configurations) after one warm-up each. Agreement: p against "
        "torch fp32 on the same inputs. `unfused` = exported with `optimize=False` (the previous path).",
        "",
    ]
    for workload in dict.fromkeys(r["workload"] for r in rows):
        lines += [
            f"## {workload}",
            "",
            "| config | provider | s / call (median, min) | pairs/s | sequences/s | vs torch fp32 "
            "| vs torch bf16 | max abs dp | mean abs dp |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        group = [r for r in rows if r["workload"] == workload]
        base = next(r for r in group if r["config"] == REFERENCE)
        bf16 = next((r for r in group if r["config"] == "torch bf16"), None)
        for r in group:
            vs_bf16 = f"{bf16['seconds_per_call'] / r['seconds_per_call']:.2f}x" if bf16 else "-"
            lines.append(
                f"| {r['config']} | {r['provider']} | {r['seconds_per_call']:.3f}, "
                f"{r['seconds_per_call_min']:.3f} | {r['pairs_per_s']:,.0f} | {r['sequences_per_s']:,.1f} | "
                f"{base['seconds_per_call'] / r['seconds_per_call']:.2f}x | {vs_bf16} | "
                f"{r['max_abs_diff_p_vs_torch_fp32']:.2g} | {r['mean_abs_diff_p_vs_torch_fp32']:.2g} |"
            )
        first = group[0]
        lines += [
            "",
            f"{first['sequences_per_call']} sequences per call, {first['mean_tokens_per_sequence']:.0f} "
            f"tokens per sequence on average; {first['calls']} call(s) per rep, {first['reps']} reps. "
            f"Stage split of one {first['config']} call: tokenize {first['tokenize_s']:.3f} s, "
            f"run {first['run_s']:.3f} s, postprocess {first['postprocess_s']:.3f} s.",
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
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of CONFIGS")
    parser.add_argument("--part", choices=["all", "bi-encoder", "cross-encoder"], default="all")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configs {unknown}; known: {list(CONFIGS)}")
    if REFERENCE not in configs:
        configs.append(REFERENCE)

    import torch

    threads = physical_cores()
    torch.set_num_threads(threads)
    os.environ["RERANK_ORT_THREADS"] = str(threads)
    store = ModelStore(args.cache / "models")
    loadavg_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows: list[dict] = []
    if args.part in ("all", "bi-encoder"):
        rows += bench_bi_encoder(store, args.cache, configs, args.queries, args.k, args.reps)
    if args.part in ("all", "cross-encoder"):
        rows += bench_cross_encoder(store, args.cache, configs, args.batch, args.reps)
    import onnxruntime
    import transformers

    meta = {
        "command": "python bench/models_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpu": cpu_name(),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "loadavg_before": loadavg_before,
        "loadavg_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
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
