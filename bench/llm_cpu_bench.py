"""Pairwise LLMs on CPU: our CPU default against the HF transformers fp32 reference, on the same triples.

    .venv/bin/python bench/llm_cpu_bench.py --out bench/results --triples 20 [--threads 2 1] [--store DIR]

Model: the embedded SmolLM2 PRP model (``smollm-prp``, exported into the store; its manifest's
``cpu_default`` was measured on this machine at export, models/cpu_default.py). Triples: DL 2019 queries
with two of their BM25 top passages, in both orders. Every contender gets the exact token ids our PRP
kind builds (prompt, chat template, budgets), one triple per call:

- ``hf-generate-fp32``: ``AutoModelForCausalLM`` fp32, ``generate(max_new_tokens=1, output_scores=True)``,
  p = softmax over the scores of the two label tokens (the reference way);
- ``hf-forward-fp32``: one forward pass of the same model, the same read-out;
- ``rerank-default``: ``load_model("smollm-prp")`` with no backend, variant or dtype (the CPU default);
- ``onnx-fp32``, ``onnx-int8`` and (only on CPUs with bf16 units) ``torch-bf16``: each candidate forced.

Per triple the contenders run in rotating order; speed-up = median over triples of (hf-generate-fp32 time
/ contender time); decisions (p > 1/2) and max |dp| against hf-generate-fp32. Goal (issue 15): the CPU
default >= 2x the HF fp32 reference with >= 95% of its decisions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from bench_common import machine, median_ratio, write_results

from rerank.models.runtime import cpu_name

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def triples(data: Path, n: int) -> list[tuple[str, str, str]]:
    from rerank.evaluation.trec import rank_docs, read_corpus, read_queries, read_run

    folder = data / "trec-dl-2019-passage"
    queries, corpus = read_queries(folder / "queries.tsv"), read_corpus(folder / "corpus.jsonl")
    run = read_run(folder / "run.bm25.top100.trec")
    out = []
    for qid in sorted(run):
        docs = [d for d in rank_docs(run[qid]) if d in corpus]
        if qid in queries and len(docs) >= 4:
            out += [(queries[qid], corpus[docs[0]], corpus[docs[3]]), (queries[qid], corpus[docs[3]], corpus[docs[0]])]
        if len(out) >= n:
            return out[:n]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--store", default=None)
    parser.add_argument("--triples", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1],
                        help="thread counts to compare at (torch.set_num_threads = ORT intra-op threads)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("RERANK_DATA", "../shared/data")))
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from rerank.models import ModelStore, ensure_embedded, load_model
    from rerank.models.cpu_default import has_bf16_units

    store = ModelStore(args.store)
    manifest = ensure_embedded("smollm-prp", store=store)
    a_id, b_id = manifest.spec.options["label_token_ids"]
    hf = AutoModelForCausalLM.from_pretrained(manifest.source, dtype=torch.float32).eval()
    items = triples(args.data, args.triples)
    tokenizer = load_model("smollm-prp", "onnx", store=store, variant="fp32")
    ids = [torch.tensor([list(tokenizer.prepare([item]).input_ids[0])]) for item in items]

    def hf_generate(i: int) -> float:
        with torch.inference_mode():
            out = hf.generate(ids[i], attention_mask=torch.ones_like(ids[i]), max_new_tokens=1, do_sample=False,
                              output_scores=True, return_dict_in_generate=True, pad_token_id=hf.config.eos_token_id)
        s = out.scores[0][0]
        return float(torch.sigmoid(s[a_id] - s[b_id]))

    def hf_forward(i: int) -> float:
        with torch.inference_mode():
            s = hf(ids[i]).logits[0, -1]
        return float(torch.sigmoid(s[a_id] - s[b_id]))

    def ours(model):
        return lambda i: float(model.compare_batch([items[i]]).p[0])

    def contenders_at(threads: int) -> dict:
        onnx = {"intra_op_threads": threads}
        out = {"hf-generate-fp32": hf_generate, "hf-forward-fp32": hf_forward,
               "rerank-default": ours(load_model("smollm-prp", store=store, **onnx)),
               "onnx-fp32": ours(load_model("smollm-prp", "onnx", store=store, variant="fp32", **onnx))}
        if "int8" in manifest.variants:
            out["onnx-int8"] = ours(load_model("smollm-prp", "onnx", store=store, variant="int8", **onnx))
        if has_bf16_units():
            out["torch-bf16"] = ours(load_model("smollm-prp", "torch", store=store, dtype="bfloat16"))
        return out

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
    for i in range(len(items)):
        for t in args.threads:  # every thread count sees the triple, each contender in rotating order
            torch.set_num_threads(t)
            for name in names[i % len(names):] + names[: i % len(names)]:
                t0 = time.perf_counter()
                p = contenders[t][name](i)
                times[t][name].append(time.perf_counter() - t0)
                answers[t][name].append(p)
        loads.append(os.getloadavg()[0])
        print(f"triple {i + 1}/{len(items)} load {loads[-1]:.1f}", file=sys.stderr, flush=True)
    end = machine()
    record = dict(manifest.cpu_default)
    rows: dict[int, dict] = {}
    for t in args.threads:
        ref = np.asarray(answers[t]["hf-generate-fp32"])
        rows[t] = {}
        for name in names:
            p = np.asarray(answers[t][name])
            rows[t][name] = {"median_ms": 1000 * statistics.median(times[t][name]),
                             "speedup_vs_hf_generate_fp32": median_ratio(times[t]["hf-generate-fp32"], times[t][name]),
                             "decision_agreement": float(np.mean((p > 0.5) == (ref > 0.5))),
                             "max_abs_diff_p": float(np.max(np.abs(p - ref)))}
    threads = " ".join(map(str, args.threads))
    lines = ["# Pairwise LLM (SmolLM2-135M PRP) on CPU against HF transformers fp32", "",
             f"Command: `.venv/bin/python bench/llm_cpu_bench.py --out bench/results --triples {len(items)} "
             f"--threads {threads}`; {len(items)} DL 2019 triples (query, BM25 #1, #4, both orders), one triple "
             "per call; per triple every thread count runs every contender in rotating order; at each thread "
             "count torch (`torch.set_num_threads`) and ONNX Runtime (`intra_op_num_threads`) get the same "
             f"number. CPU: {cpu_name()} ({'with' if has_bf16_units() else 'no'} bf16 units). Load average at "
             f"start {start['loadavg']}, at end {end['loadavg']}; 1-minute load after each triple: min "
             f"{min(loads):.1f}, median {statistics.median(loads):.1f}, max {max(loads):.1f} (other engineers' "
             "jobs on the same 2 cores).", "",
             f"CPU default recorded at export: **{record.get('choice', 'none')}** "
             f"(measured {record.get('measured', '?')} on {record.get('cpu', '?')}).", ""]
    for t in args.threads:
        lines += [f"## {t} thread{'s' if t > 1 else ''}", "",
                  "| contender | median ms | speed-up vs HF generate fp32 | decisions agree | max abs dp |",
                  "| --- | --- | --- | --- | --- |"]
        for name, r in rows[t].items():
            lines.append(f"| {name} | {r['median_ms']:.1f} | {r['speedup_vs_hf_generate_fp32']:.2f} | "
                         f"{r['decision_agreement']:.0%} | {r['max_abs_diff_p']:.4f} |")
        d = rows[t]["rerank-default"]
        met = d["speedup_vs_hf_generate_fp32"] >= 2 and d["decision_agreement"] >= 0.95
        lines += ["", f"Goal at {t} thread(s) (default >= 2x HF fp32 generate, >= 95% decisions): "
                  f"{d['speedup_vs_hf_generate_fp32']:.2f}x, {d['decision_agreement']:.0%} "
                  f"({'met' if met else 'NOT met'}).", ""]
    write_results(args.out, "llm_cpu", {"machine": start, "end": end, "cpu": cpu_name(), "triples": len(items),
                                        "threads": args.threads, "loadavg_per_triple": loads,
                                        "rows": {str(t): r for t, r in rows.items()}, "cpu_default": record}, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
