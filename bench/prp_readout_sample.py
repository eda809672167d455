"""A small sample of the corrected PRP read-out on SmolLM2-135M-Instruct (torch eager, the converted GGUF
weights; no ONNX export): every ordered pair of the BM25 top ``--depth`` of the first ``--queries`` judged
DL 2019 queries. Reports the share of "A" answers (p > 0.5) and the order inconsistency (pairs whose two
orders pick the same slot). For the full figures (nDCG@10 at depth 20) use ``bench/effectiveness_bench.py
--part smollm``. ``python bench/prp_readout_sample.py --out bench/results``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.effectiveness_bench import load_collection
from rerank.models import load_model
from rerank.models.embedded import embedded_source

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--queries", type=int, default=2)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--store", type=Path, default=ROOT / "bench" / "cache" / "models")
    args = parser.parse_args()
    model = load_model(embedded_source("smollm-prp", args.store), backend="torch", kind="prp")
    corpus, queries, _qrels, ranked = load_collection(args.depth)
    t0 = time.perf_counter()
    share_a, inconsistent, pairs = [], [], 0
    for qid in list(ranked)[: args.queries]:
        docs = [corpus[d] for d in ranked[qid]]
        idx = [(i, j) for i in range(len(docs)) for j in range(len(docs)) if i != j]
        p = model.compare(queries[qid], [(docs[i], docs[j]) for i, j in idx])
        P = dict(zip(idx, p, strict=True))
        share_a.append(float(np.mean(p > 0.5)))
        inconsistent.append(float(np.mean([(P[i, j] > 0.5) == (P[j, i] > 0.5) for i, j in idx if i < j])))
        pairs += len(idx)
        print(json.dumps({"qid": qid, "share_a": share_a[-1], "order_inconsistency": inconsistent[-1]}), flush=True)
    result = {"model": "smollm-prp (torch fp32, corrected read-out)", "options": dict(model.spec.options),
              "queries": len(share_a), "depth": args.depth, "pairs": pairs, "share_a": float(np.mean(share_a)),
              "order_inconsistency": float(np.mean(inconsistent)), "seconds": time.perf_counter() - t0}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prp_readout_sample.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "options"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
