"""Does SmolLM2's CPU default (torch int8) answer setwise calls as torch fp32 does?

``python bench/setwise_int8_check.py --store STORE [--queries 2 --groups 5 --ks 3,5,10]``: for the first
``--queries`` judged DL19 queries (run-file order), ``--groups`` random groups of K of the BM25 top 20 per K
(seeded), the ``setwise`` kind on torch fp32 and on torch int8 (dynamic int8 Linear weights), interleaved per call.
Reports the share of calls whose most probable label is the same, the max |dp| over labels, and seconds per call
of each (1 torch thread). The PRP kind's int8 check is the export's (docs/models.md); this one covers setwise,
which bench/setwise_smollm_bench.py runs at int8.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_out_and_data, machine, write_results

from rerank.bench.budgets import load_dataset, rank_docs
from rerank.models.embedded import embedded_source
from rerank.models.load import load_model


def main() -> None:
    import torch

    parser = add_out_and_data(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--store", required=True)
    parser.add_argument("--queries", type=int, default=2)
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--ks", type=lambda s: [int(x) for x in s.split(",")], default=[3, 5, 10])
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = machine()
    data = load_dataset(Path(args.data) / "trec-dl-2019-passage")
    qids = [q for q in dict.fromkeys(data.run) if q in data.qrels and q in data.queries][: args.queries]
    source = embedded_source("smollm-prp", args.store)
    models = {dtype: load_model(source, "torch", kind="setwise", dtype=dtype) for dtype in ("float32", "int8")}
    rng = np.random.default_rng(0)
    rows = []
    for qid in qids:
        texts = [data.corpus[d] for d in rank_docs(data.run[qid])[:20] if data.corpus.get(d, "").strip()]
        for k in args.ks:
            for _ in range(args.groups):
                group = [texts[i] for i in rng.choice(len(texts), size=k, replace=False)]
                out = {}
                for dtype, model in models.items():
                    t0 = time.perf_counter()
                    probs, _ = model.compare_sets(data.queries[qid], [group])
                    out[dtype] = (probs[0], time.perf_counter() - t0)
                fp, q8 = out["float32"][0], out["int8"][0]
                rows.append({"qid": qid, "k": k, "same_label": bool(np.argmax(fp) == np.argmax(q8)),
                             "max_abs_dp": float(np.abs(fp - q8).max()), "fp32_s": out["float32"][1],
                             "int8_s": out["int8"][1]})
                print(rows[-1], file=sys.stderr, flush=True)
    end = machine()
    summary = [{"k": k, "calls": len(sel), "same_label": float(np.mean([r["same_label"] for r in sel])),
                "max_abs_dp": float(max(r["max_abs_dp"] for r in sel)),
                "fp32_s": float(np.median([r["fp32_s"] for r in sel])),
                "int8_s": float(np.median([r["int8_s"] for r in sel]))}
               for k in args.ks for sel in [[r for r in rows if r["k"] == k]]]
    command = "python bench/setwise_int8_check.py " + " ".join(sys.argv[1:])
    md = [f"# SmolLM2 setwise: torch int8 against torch fp32 (`{command}`)", "",
          f"Queries {', '.join(qids)}; {args.groups} random groups per K and query; 1 torch thread, "
          f"{start['cpu']}, {start['cores']} cores, {start['utc']}.", "",
          "| K | calls | same most probable label | max abs dp | median s/call fp32 | int8 |",
          "| --- | --- | --- | --- | --- | --- |"]
    md += [f"| {s['k']} | {s['calls']} | {s['same_label']:.0%} | {s['max_abs_dp']:.3f} | {s['fp32_s']:.2f} | "
           f"{s['int8_s']:.2f} |" for s in summary]
    md += ["", f"Load average {start['loadavg']} at the start, {end['loadavg']} at the end."]
    write_results(Path(args.out), "setwise_smollm_int8_check", {"command": command, "rows": rows, "summary": summary,
                                                                "start": start, "end": end}, md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
