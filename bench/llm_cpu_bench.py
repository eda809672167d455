"""Pairwise LLMs on CPU: our CPU default against the HF transformers fp32 reference, on the same triples.

    .venv/bin/python bench/llm_cpu_bench.py --out bench/results --queries 2 --depth 5 [--threads 1 2] [--store DIR]

Model: the embedded SmolLM2 PRP model (``smollm-prp``, exported into the store; its manifest's
``cpu_default`` was measured on this machine at export, models/cpu_default.py). Workload: ranking
requests, one per DL 2019 query: every ordered pair of its BM25 top ``--depth`` passages (depth 5: 20
triples), as a re-ranking request with sampler ``all`` sends them. Every contender gets the exact token ids
our PRP kind builds (prompt, chat template, budgets):

- ``hf-generate-fp32``: ``AutoModelForCausalLM`` fp32, ``generate(max_new_tokens=1, output_scores=True)``
  per triple, p = softmax over the scores of the two label tokens (the reference way: llm-rankers);
- ``hf-forward-fp32``: one forward pass per triple, the same read-out;
- ``rerank-default``: ``load_model("smollm-prp")`` with no backend, variant or dtype (the CPU default),
  the request's triples in one ``compare_batch``;
- ``onnx-fp32``, ``onnx-int8`` (where the export kept it), ``torch-fp32`` and ``torch-int8`` (shared
  prompt prefixes, models/prefix.py) and (only on CPUs with bf16 units) ``torch-bf16``: each forced.

Per request the contenders run in rotating order; speed-up = median over requests of (hf-generate-fp32
time / contender time); decisions (p > 1/2) and max |dp| against hf-generate-fp32 over every triple.
Goal (issue 15): the CPU default >= 2x the HF fp32 reference with >= 95% of its decisions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from bench_common import add_out_and_data, machine, median_ratio, write_results

from rerank.models.runtime import cpu_name

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def requests(data: Path, n: int, depth: int) -> list[list[tuple[str, str, str]]]:
    """One request per query (the first ``n`` in query-id order with ``depth`` passages): every ordered pair
    of its BM25 top ``depth``."""
    from rerank.evaluation.trec import rank_docs, read_corpus, read_queries, read_run

    folder = data / "trec-dl-2019-passage"
    queries, corpus = read_queries(folder / "queries.tsv"), read_corpus(folder / "corpus.jsonl")
    run = read_run(folder / "run.bm25.top100.trec")
    out = []
    for qid in sorted(run):
        docs = [corpus[d] for d in rank_docs(run[qid]) if d in corpus][:depth]
        if qid in queries and len(docs) == depth:
            out.append([(queries[qid], a, b) for a in docs for b in docs if a != b])
        if len(out) >= n:
            break
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_out_and_data(parser)
    parser.add_argument("--store", default=None)
    parser.add_argument("--queries", type=int, default=2, help="requests: one per query")
    parser.add_argument("--depth", type=int, default=5, help="passages per request (all ordered pairs)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="thread counts to compare at (torch.set_num_threads = ORT intra-op threads)")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from rerank.models import ModelStore, ensure_embedded, load_model
    from rerank.models.cpu_default import has_bf16_units

    store = ModelStore(args.store)
    manifest = ensure_embedded("smollm-prp", store=store)
    a_id, b_id = manifest.spec.options["label_token_ids"]
    hf = AutoModelForCausalLM.from_pretrained(manifest.source, dtype=torch.float32).eval()
    reqs = requests(Path(args.data), args.queries, args.depth)
    tokenizer = load_model("smollm-prp", "onnx", store=store, variant="fp32")
    ids = [[torch.tensor([list(s)]) for s in tokenizer.prepare(r).input_ids] for r in reqs]

    def hf_generate(i: int) -> list[float]:
        out = []
        with torch.inference_mode():
            for x in ids[i]:
                g = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=1, do_sample=False,
                                output_scores=True, return_dict_in_generate=True,
                                pad_token_id=hf.config.eos_token_id)
                s = g.scores[0][0]
                out.append(float(torch.sigmoid(s[a_id] - s[b_id])))
        return out

    def hf_forward(i: int) -> list[float]:
        out = []
        with torch.inference_mode():
            for x in ids[i]:
                s = hf(x).logits[0, -1]
                out.append(float(torch.sigmoid(s[a_id] - s[b_id])))
        return out

    def ours(model):
        return lambda i: model.compare_batch(reqs[i]).p.tolist()

    def contenders_at(threads: int) -> dict:
        onnx = {"intra_op_threads": threads}
        out = {"hf-generate-fp32": hf_generate, "hf-forward-fp32": hf_forward,
               "rerank-default": ours(load_model("smollm-prp", store=store, **onnx)),
               "onnx-fp32": ours(load_model("smollm-prp", "onnx", store=store, variant="fp32", **onnx))}
        if "int8" in manifest.variants:
            out["onnx-int8"] = ours(load_model("smollm-prp", "onnx", store=store, variant="int8", **onnx))
        out["torch-fp32"] = ours(load_model("smollm-prp", "torch", store=store))
        out["torch-int8"] = ours(load_model("smollm-prp", "torch", store=store, dtype="int8"))
        if has_bf16_units():
            out["torch-bf16"] = ours(load_model("smollm-prp", "torch", store=store, dtype="bfloat16"))
        return out

    default = load_model("smollm-prp", store=store)
    contenders = {t: contenders_at(t) for t in args.threads}
    names = list(contenders[args.threads[0]])
    start = machine()
    for t in args.threads:
        torch.set_num_threads(t)
        for name in names:
            contenders[t][name](0)  # warm-up
    times = {t: {n: [] for n in names} for t in args.threads}
    answers = {t: {n: [] for n in names} for t in args.threads}
    loads = []
    for i in range(len(reqs)):
        for t in args.threads:  # every thread count sees the request, each contender in rotating order
            torch.set_num_threads(t)
            for name in names[i % len(names):] + names[: i % len(names)]:
                t0 = time.perf_counter()
                p = contenders[t][name](i)
                times[t][name].append(time.perf_counter() - t0)
                answers[t][name].extend(p)
        loads.append(os.getloadavg()[0])
        print(f"request {i + 1}/{len(reqs)} load {loads[-1]:.1f}", file=sys.stderr, flush=True)
    end = machine()
    record = dict(manifest.cpu_default)
    triples = sum(map(len, reqs))
    rows: dict[int, dict] = {}
    for t in args.threads:
        ref = np.asarray(answers[t]["hf-generate-fp32"])
        rows[t] = {}
        for name in names:
            p = np.asarray(answers[t][name])
            rows[t][name] = {"median_ms_per_request": 1000 * statistics.median(times[t][name]),
                             "speedup_vs_hf_generate_fp32": median_ratio(times[t]["hf-generate-fp32"], times[t][name]),
                             "decision_agreement": float(np.mean((p > 0.5) == (ref > 0.5))),
                             "max_abs_diff_p": float(np.max(np.abs(p - ref)))}
    threads = " ".join(map(str, args.threads))
    lines = ["# Pairwise LLM (SmolLM2-135M PRP) on CPU against HF transformers fp32", "",
             f"Command: `.venv/bin/python bench/llm_cpu_bench.py --out bench/results --queries {len(reqs)} "
             f"--depth {args.depth} --threads {threads}`; {len(reqs)} ranking requests (DL 2019 queries, every "
             f"ordered pair of the BM25 top {args.depth}: {triples} triples in all); per request every thread count "
             "runs every contender in rotating order; at each thread count torch (`torch.set_num_threads`) and "
             f"ONNX Runtime (`intra_op_num_threads`) get the same number. CPU: {cpu_name()} "
             f"({'with' if has_bf16_units() else 'no'} bf16 units). Load average at start {start['loadavg']}, at end "
             f"{end['loadavg']}; 1-minute load after each request: min {min(loads):.1f}, median "
             f"{statistics.median(loads):.1f}, max {max(loads):.1f}.", "",
             f"CPU default recorded at export: **{record.get('choice', 'none')}** (measured "
             f"{record.get('measured', '?')} on {record.get('cpu', '?')}); `rerank-default` loads as "
             f"`{default.provider}`.", ""]
    for t in args.threads:
        lines += [f"## {t} thread{'s' if t > 1 else ''}", "",
                  "| contender | median ms per request | speed-up vs HF generate fp32 | decisions agree | max abs dp |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for name, r in rows[t].items():
            lines.append(f"| {name} | {r['median_ms_per_request']:,.0f} | {r['speedup_vs_hf_generate_fp32']:.2f} | "
                         f"{r['decision_agreement']:.0%} | {r['max_abs_diff_p']:.4f} |")
        d = rows[t]["rerank-default"]
        met = d["speedup_vs_hf_generate_fp32"] >= 2 and d["decision_agreement"] >= 0.95
        lines += ["", f"Goal at {t} thread(s) (default >= 2x HF fp32 generate, >= 95% decisions): "
                  f"{d['speedup_vs_hf_generate_fp32']:.2f}x, {d['decision_agreement']:.0%} "
                  f"({'met' if met else 'NOT met'}).", ""]
    write_results(Path(args.out), "llm_cpu", {"machine": start, "end": end, "cpu": cpu_name(), "requests": len(reqs),
                                        "depth": args.depth, "triples": triples, "threads": args.threads,
                                        "loadavg_per_request": loads, "default_provider": default.provider,
                                        "rows": {str(t): r for t, r in rows.items()}, "cpu_default": record}, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
