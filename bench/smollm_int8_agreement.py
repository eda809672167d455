"""SmolLM2 PRP: torch int8 (its measured CPU default) against torch fp32 on the prompts both answered.

``python bench/smollm_int8_agreement.py --store STORE [--answers bench/cache/smollm-answers.sqlite]``: every ordered
pair of the BM25 top ``--depth`` of the first ``--queries`` judged DL19 queries (run-file order) is tokenized (no
model is run); where the answer cache (bench/smollm_answers.py) holds the prompt's answer at both dtypes (int8 from
bench/escalation_smollm_bench.py, fp32 from bench/setwise_smollm_bench.py --dtype float32), the share of equal
decisions (p >= 0.5) and |dp|.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_out_and_data, machine, write_results
from smollm_answers import AnswerCache, model_tag, prompt_key

from rerank.bench.budgets import load_dataset, rank_docs
from rerank.models.embedded import embedded_source
from rerank.models.registry import kind_class
from rerank.models.sources import describe_source, text_encoder_from_hf


def main() -> None:
    parser = add_out_and_data(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--store", required=True)
    parser.add_argument("--answers", default="bench/cache/smollm-answers.sqlite")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--depth", type=int, default=20)
    args = parser.parse_args()
    start = machine()
    data = load_dataset(Path(args.data) / "trec-dl-2019-passage")
    qids = [q for q in dict.fromkeys(data.run) if q in data.qrels and q in data.queries][: args.queries]
    source = embedded_source("smollm-prp", args.store)
    spec, hf_tok = describe_source(source, "prp")
    kind = kind_class("prp")(spec, text_encoder_from_hf(hf_tok))
    tags = {dtype: model_tag(source, "prp", dtype) for dtype in ("int8", "float32")}
    cache = AnswerCache(Path(args.answers))
    both = []
    for qid in qids:
        texts = [data.corpus[d] for d in rank_docs(data.run[qid])[: args.depth] if data.corpus.get(d, "").strip()]
        items = [(data.queries[qid], texts[a], texts[b]) for a in range(len(texts)) for b in range(len(texts))
                 if a != b]
        ids = kind.prepare(items).input_ids
        keys = {dtype: [prompt_key(tag, x) for x in ids] for dtype, tag in tags.items()}
        found = {dtype: cache.get(k) for dtype, k in keys.items()}
        both += [(found["int8"][k8][0], found["float32"][k32][0]) for k8, k32 in zip(keys["int8"], keys["float32"],
                                                                                     strict=True)
                 if k8 in found["int8"] and k32 in found["float32"]]
    p8, p32 = np.array(both).T if both else (np.zeros(0), np.zeros(0))
    result = {"prompts": len(both), "same_decision": float(np.mean((p8 >= 0.5) == (p32 >= 0.5))) if both else None,
              "max_abs_dp": float(np.abs(p8 - p32).max()) if both else None,
              "mean_abs_dp": float(np.abs(p8 - p32).mean()) if both else None,
              "a_share_int8": float(np.mean(p8 >= 0.5)) if both else None,
              "a_share_fp32": float(np.mean(p32 >= 0.5)) if both else None}
    command = "python bench/smollm_int8_agreement.py " + " ".join(sys.argv[1:])
    md = [f"# SmolLM2 PRP: torch int8 against torch fp32 on cached prompts (`{command}`)", "",
          f"Queries {', '.join(qids)}, ordered pairs of the BM25 top {args.depth} answered at both dtypes: "
          f"{result['prompts']}; same decision (p >= 0.5) {result['same_decision']}; max |dp| {result['max_abs_dp']}, "
          f"mean |dp| {result['mean_abs_dp']}; share of A answers int8 {result['a_share_int8']}, fp32 "
          f"{result['a_share_fp32']}. {start['utc']}, load average {start['loadavg']}."]
    write_results(Path(args.out), "smollm_prp_int8_agreement", {"command": command, "queries": qids, **result,
                                                                "start": start}, md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
