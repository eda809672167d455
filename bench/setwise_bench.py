"""Setwise (K-wise) against pairwise at equal model calls, on a noisy oracle over TREC DL 2019 (BM25 top 50).

``python bench/setwise_bench.py [--noise 3 --bias 1 --seeds 3]``: for the 43 judged DL19 queries, the BM25 top
``--depth`` (first-stage order) is re-ranked by

- setwise heapsort and bubblesort as llm-rankers runs them (K = 3, 5, 10; top 10), on a K-wise oracle;
- pairwise samplers at the same number of calls per query: the project's default (``active`` + symmetric +
  HodgeRank + first-stage prior) and PRP heapsort (its own calls, unbudgeted, one order per pair);
- budgeted K-wise samplers at the same calls: ``kwise-active`` and ``kwise-random``, answers calibrated
  (``slot``) and aggregated by HodgeRank over the implied pairs.

Oracles. Pairwise: ``models/oracle.py``, p(a, b) = sigmoid(2 (g_a - g_b) + bias + e_ab), e_ab ~ N(0, noise^2).
K-wise: a Plackett-Luce choice over the shown K, P(slot s) = softmax_s(2 g_s + bias [s = 0] + e_s) with
e_s ~ N(0, noise^2 / 2) drawn once per (seed, query, shown group, slot) from a hash, so with K = 2 it is the
pairwise oracle (e_a - e_b ~ N(0, noise^2), the first-slot bias in logits). nDCG@10 (rerank.evaluation) per
query, mean over queries and over ``--seeds`` oracle seeds. One call = one model call, whatever its K.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_out_and_data, machine, write_results

from rerank.aggregation.engine import aggregate
from rerank.aggregation.kwise import calibrate_slots, run_kwise_sampler
from rerank.aggregation.kwise.samplers import kwise_active, kwise_random, setwise_bubblesort, setwise_heapsort
from rerank.aggregation.registry import lookup
from rerank.aggregation.samplers.base import run_sampler
from rerank.bench.budgets import load_dataset
from rerank.evaluation.metrics import ndcg_at_k
from rerank.models.oracle import oracle_from_qrels
from rerank.pipeline import prior_weight_for


class KwiseOracle:
    """The K-wise twin of the pairwise oracle (module docstring)."""

    def __init__(self, grades: dict[tuple[str, str], float], noise: float, bias: float, seed: int,
                 scale: float = 2.0) -> None:
        self.grades, self.noise, self.bias, self.seed, self.scale = grades, noise, bias, seed, scale

    def answer(self, query: str, texts: list[str]) -> np.ndarray:
        logits = np.array([self.scale * self.grades.get((query, t), 0.0) for t in texts])
        if self.noise:
            key = "\x1e".join([str(self.seed), query, *texts]).encode()
            digest = hashlib.blake2b(key, digest_size=8).digest()
            logits += np.random.default_rng(int.from_bytes(digest, "little")).normal(
                0.0, self.noise / np.sqrt(2.0), len(texts))
        logits[0] += self.bias
        e = np.exp(logits - logits.max())
        return e / e.sum()


def _ranking_from(order: np.ndarray, docids: list[str]) -> list[str]:
    return [docids[i] for i in order]


def run(args: argparse.Namespace) -> dict:
    data = load_dataset(Path(args.data) / "trec-dl-2019-passage")
    qids = data.judged_qids
    rows: list[dict] = []
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        pair_oracle = oracle_from_qrels(data.qrels, data.queries, data.corpus, noise=args.noise, bias=args.bias,
                                        seed=seed)
        kwise_oracle = KwiseOracle(pair_oracle._grades, args.noise, args.bias, seed)
        for qid in qids:
            query = data.queries[qid]
            docids = sorted(data.run[qid], key=lambda d: -data.run[qid][d])[: args.depth]
            texts = [data.corpus[d] for d in docids]
            qrel = data.qrels[qid]
            n = len(docids)

            def pair_compare(pairs, q=query, tx=texts, o=pair_oracle):
                return o.compare(q, [(tx[a], tx[b]) for a, b in pairs])

            def kwise_compare(groups, q=query, tx=texts, o=kwise_oracle):
                return [o.answer(q, [tx[i] for i in g]) for g in groups]

            def record(method: str, k: int, calls: int, order: np.ndarray, qid: str = qid, qrel=qrel,
                       docids=docids, seed: int = seed) -> None:
                rows.append({"seed": seed, "qid": qid, "method": method, "k": k, "calls": calls,
                             "ndcg10": ndcg_at_k(_ranking_from(order, docids), qrel, 10)})

            record("bm25", 0, 0, np.arange(n))
            prp = run_sampler(lookup("sampler", "heapsort"), n, n * (n - 1), pair_compare, seed=seed, top_n=10)
            record("prp-heapsort", 2, prp.used, prp.order)
            for k in args.ks:
                for name, sampler in (("setwise-heapsort", setwise_heapsort),
                                      ("setwise-bubblesort", setwise_bubblesort)):
                    out = run_kwise_sampler(sampler, n, 100_000, kwise_compare, k=k, top_n=10, seed=seed)
                    record(name, k, out.used, out.order)
                    if name != "setwise-heapsort":
                        continue
                    budget = out.used  # the pairwise and budgeted K-wise rivals get the same calls
                    act = run_sampler(lookup("sampler", "active"), n, budget, pair_compare, seed=seed, top_n=10)
                    rep = aggregate(act.comparisons, "hodgerank", "symmetric",
                                    prior_weight=prior_weight_for(1.0, n, act.used))
                    record(f"pairwise-active@setwise-heapsort-k{k}", 2, act.used, rep.order)
                    for kname, ksampler in (("kwise-active", kwise_active), ("kwise-random", kwise_random)):
                        kout = run_kwise_sampler(ksampler, n, budget, kwise_compare, k=k, seed=seed)
                        scores = lookup("kwise_aggregator", "pairs:hodgerank")(calibrate_slots(kout.observations))
                        record(f"{kname}@setwise-heapsort-k{k}", k, kout.used, scores.ranking())
        print(f"seed {seed} done after {time.perf_counter() - t0:.0f} s", flush=True)
    return {"rows": rows, "queries": len(qids), "seconds": time.perf_counter() - t0}


def summarize(rows: list[dict]) -> list[dict]:
    keys = sorted({(r["method"], r["k"]) for r in rows}, key=lambda x: (x[1], x[0]))
    out = []
    for method, k in keys:
        sel = [r for r in rows if r["method"] == method and r["k"] == k]
        out.append({"method": method, "k": k, "calls_per_query": float(np.mean([r["calls"] for r in sel])),
                    "ndcg10": float(np.mean([r["ndcg10"] for r in sel]))})
    return out


def main() -> None:
    parser = add_out_and_data(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--noise", type=float, default=3.0)
    parser.add_argument("--bias", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--ks", type=lambda s: [int(x) for x in s.split(",")], default=[3, 5, 10])
    args = parser.parse_args()
    start = machine()
    result = run(args)
    table = summarize(result["rows"])
    end = machine()
    command = "python bench/setwise_bench.py " + " ".join(sys.argv[1:])
    stem = f"setwise_oracle_noise{args.noise:g}_bias{args.bias:g}"
    data = {"command": command, "noise": args.noise, "bias": args.bias, "seeds": args.seeds, "depth": args.depth,
            "queries": result["queries"], "summary": table, "rows": result["rows"], "start": start, "end": end}
    md = [f"# Setwise vs pairwise at equal calls, K-wise oracle noise {args.noise:g}, bias {args.bias:g} "
          f"(`{command}`)", "",
          f"DL19 BM25 top {args.depth}, {result['queries']} queries, {args.seeds} oracle seeds; nDCG@10 mean.", "",
          "| method | K | calls / query | nDCG@10 |", "| --- | --- | --- | --- |"]
    md += [f"| {r['method']} | {r['k']} | {r['calls_per_query']:.1f} | {r['ndcg10']:.4f} |" for r in table]
    md += ["", f"Load average {start['loadavg']} at the start, {end['loadavg']} at the end; "
           f"{result['seconds']:.0f} s."]
    write_results(Path(args.out), stem, data, md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
