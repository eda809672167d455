"""Selective escalation in a cascade (Trust or Escalate) against the plain cascade, on TREC DL 2019 passage.

    RERANK_HOME=bench/cache OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/escalation_bench.py \
        --out bench/results/escalation

BM25 top 50 of the 43 judged queries; cascade ``--stage minilm:50 --stage oracle:noise=3,bias=1:20`` with the
defaults at the last stage (``auto``: all pairs of the top 20, both orders, 380 strong comparisons a query). Both
judges answer from the preference cache of ``rerank bench budgets`` (all ordered pairs of the top 50, computed
once when missing), everything else runs through ``rerank.pipeline`` (``rerank_cascade``, ``calibrate_escalation``)
as a request does. For each of 20 random splits of the queries into calibration and test halves: the threshold
is calibrated on the calibration queries for alpha 0.1 / 0.2, delta 0.1, with either reference: ``strong`` (the
strong judge's answers) or ``qrels`` (the human preference, on the pairs whose grades differ; unjudged = 0), and
with either unit of the guarantee: ``pair`` (the binomial test over pairs), ``query`` (the query as the unit, the
default: a bound on the pooled agreement over the query population) or ``query-next`` (the same for the pooled
agreement of the next N queries, N = the test half); the test queries run the plain cascade and the escalating one.
A threshold of null: no threshold passed the test,
every pair escalated. Reported per alpha: strong-model
comparisons per query and nDCG@10 (means over splits of the means over test queries), the agreement of the cheap
judge's kept answers with the strong judge's answers on the test queries, and the share of splits where that
agreement is >= 1 - alpha (the guarantee asks >= 1 - delta of them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rerank.bench.budgets import QueryPrefs, cached_preferences, first_stage_level, load_dataset
from rerank.evaluation import ndcg_at_k
from rerank.pipeline import (
    Candidate,
    Escalation,
    Stage,
    calibrate_escalation,
    rerank_cascade,
)
from rerank.specs import TrecData, load_comparator

CHEAP, STRONG = "minilm", "oracle:noise=3,bias=1"
DEPTH, STRONG_DEPTH = 50, 20
ALPHAS, DELTA, SPLITS = (0.1, 0.2), 0.1, 20
REFERENCES = ("strong", "qrels")
UNITS = ("pair", "query", "query-next")  # query-next: calibrate_escalation(unit="query", new_queries=len(test))


class QueryReplay:
    """Answers from every query's cached preferences: the query text is its qid, candidate texts their indices;
    with ``record``, keeps every (qid, a, b, p) it answered."""

    def __init__(self, prefs: Sequence[QueryPrefs], record: bool = False) -> None:
        self.P = {q.qid: q.P for q in prefs}
        self.asked: list[tuple[str, int, int, float]] | None = [] if record else None

    def compare_batch(self, items: Sequence[tuple[str, str, str]]) -> np.ndarray:
        p = np.array([self.P[q][int(a), int(b)] for q, a, b in items], dtype=np.float64)
        if self.asked is not None:
            self.asked += [(q, int(a), int(b), float(x)) for (q, a, b), x in zip(items, p, strict=True)]
        return p


def run_alpha(reference: str, alpha: float, unit: str, n_splits: int, requests, plain, plain_stages, cheap_prefs,
              grades, ndcg) -> dict:
    """20 (``n_splits``) calibration/test splits at one alpha and reference (``strong``: the strong judge's answers;
    ``qrels``: the human preference on the pairs whose grades differ)."""
    first, last = plain_stages
    cheap, strong = first.model, last.model
    n_q = len(requests)
    splits = []
    for split in range(n_splits):
        order = np.random.default_rng(split).permutation(n_q)
        cal, test = sorted(order[: n_q // 2].tolist()), sorted(order[n_q // 2:].tolist())
        found = calibrate_escalation([requests[qi] for qi in cal], plain_stages, cheap, alpha=alpha, delta=DELTA,
                                     grades=grades if reference == "qrels" else None, unit=unit.split("-")[0],
                                     new_queries=len(test) if unit == "query-next" else None)
        kept_judge = QueryReplay(cheap_prefs, record=True)
        stages = [Stage(cheap, first.depth, first.name),
                  Stage(strong, last.depth, last.name, Escalation(kept_judge, found.threshold, first.name))]
        got, strong_calls = [], []
        for qi in test:
            out = rerank_cascade(requests[qi][0], requests[qi][1], stages)
            got.append(ndcg(qi, out))
            strong_calls.append(out.stages[-1].comparisons)
        assert kept_judge.asked is not None
        kept = [(q, a, b, p) for q, a, b, p in kept_judge.asked if max(p, 1 - p) >= found.threshold]
        if reference == "strong":
            agree = [(p >= 0.5) == (strong.P[q][a, b] >= 0.5) for q, a, b, p in kept]
        else:
            gaps = [(grades[(q, str(a))] - grades[(q, str(b))], p) for q, a, b, p in kept]
            agree = [(p >= 0.5) == (gap > 0) for gap, p in gaps if gap != 0]
        splits.append({
            "split": split, "threshold": found.threshold if np.isfinite(found.threshold) else None,
            "calibration_pairs": found.calibration_items,
            "calibration_kept": found.kept, "ndcg10": float(np.mean(got)),
            "plain_ndcg10": float(np.mean([plain[qi][0] for qi in test])),
            "strong_per_query": float(np.mean(strong_calls)),
            "plain_strong_per_query": float(np.mean([plain[qi][1] for qi in test])),
            "test_kept": len(kept), "test_labelled_kept": len(agree),
            "test_agreement": float(np.mean(agree)) if agree else None})
        print(json.dumps({"reference": reference, "alpha": alpha, "unit": unit, **splits[-1]}), file=sys.stderr)
    agreements = [s["test_agreement"] for s in splits if s["test_agreement"] is not None]
    finite = [s["threshold"] for s in splits if s["threshold"] is not None]
    return {
        "reference": reference, "alpha": alpha, "unit": unit, "delta": DELTA, "splits": splits,
        "ndcg10": float(np.mean([s["ndcg10"] for s in splits])),
        "plain_ndcg10": float(np.mean([s["plain_ndcg10"] for s in splits])),
        "strong_per_query": float(np.mean([s["strong_per_query"] for s in splits])),
        "plain_strong_per_query": float(np.mean([s["plain_strong_per_query"] for s in splits])),
        "thresholds_found": len(finite), "threshold_median": float(np.median(finite)) if finite else None,
        "agreement_mean": float(np.mean(agreements)) if agreements else None,
        "agreement_min": float(np.min(agreements)) if agreements else None,
        # a split that keeps nothing holds the guarantee vacuously
        "guarantee_share": float(np.mean([s["test_agreement"] is None or s["test_agreement"] >= 1 - alpha
                                          for s in splits]))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("RERANK_DATA", "../shared/data"))
    parser.add_argument("--cache", default="bench/cache/preferences")
    parser.add_argument("--splits", type=int, default=SPLITS)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    started, load_start = time.monotonic(), os.getloadavg()
    data = load_dataset(Path(args.data) / "trec-dl-2019-passage")
    trec = TrecData(data.qrels, data.queries, data.corpus)
    prefs = {m: cached_preferences(data, m, DEPTH, Path(args.cache), lambda m=m: load_comparator(m, trec=trec),
                                   data.judged_qids, quiet=True) for m in (CHEAP, STRONG)}
    cheap_prefs, strong_prefs = prefs[CHEAP], prefs[STRONG]
    n_q = len(cheap_prefs)

    def ndcg(qi: int, out) -> float:
        q = cheap_prefs[qi]
        return ndcg_at_k([r.id for r in out.results] + q.rest, data.qrels[q.qid], 10)

    cheap, strong = QueryReplay(cheap_prefs), QueryReplay(strong_prefs)
    plain_stages = [Stage(cheap, DEPTH, CHEAP), Stage(strong, STRONG_DEPTH, STRONG)]
    requests = [(q.qid, [Candidate(d, str(i)) for i, d in enumerate(q.docids)]) for q in cheap_prefs]
    plain = {}  # the plain cascade, once per query (it does not depend on the split)
    for qi, (qid, cands) in enumerate(requests):
        out = rerank_cascade(qid, cands, plain_stages)
        plain[qi] = (ndcg(qi, out), out.stages[-1].comparisons)
    grades = {(q.qid, str(i)): float(max(data.qrels[q.qid].get(d, 0), 0)) for q in cheap_prefs
              for i, d in enumerate(q.docids)}
    rows = []
    for reference in REFERENCES:
        for alpha in ALPHAS:
            for unit in UNITS:
                rows.append(run_alpha(reference, alpha, unit, args.splits, requests, plain, plain_stages, cheap_prefs,
                                      grades, ndcg))
    plain_all = {"ndcg10": float(np.mean([v[0] for v in plain.values()])),
                 "strong_per_query": float(np.mean([v[1] for v in plain.values()]))}
    meta = {"command": "RERANK_HOME=bench/cache OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/escalation_bench.py "
                       f"--out {args.out}", "dataset": data.name, "depth": DEPTH, "strong_depth": STRONG_DEPTH,
            "cheap": CHEAP, "strong": STRONG, "queries": n_q, "first_stage_ndcg10": first_stage_level(cheap_prefs,
                                                                                                      data.qrels),
            "plain_all_queries": plain_all, "load_average_start": load_start,
            "load_average": os.getloadavg(), "seconds": time.monotonic() - started,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    write_results(Path(args.out), meta, rows)
    return 0


def write_results(out: Path, meta: dict, rows: list[dict]) -> None:
    """``results.json`` (meta and rows) and ``summary.md`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=2))
    write_summary(out, meta, rows)


def write_summary(out: Path, meta: dict, rows: list[dict]) -> None:
    lines = ["# Selective escalation in a cascade (Trust or Escalate) on DL19", "", f"Command: `{meta['command']}`",
             "", f"Cascade `--stage {meta['cheap']}:{meta['depth']} --stage {meta['strong']}:{meta['strong_depth']}`, "
             f"{meta['queries']} judged queries (BM25 first stage nDCG@10 {meta['first_stage_ndcg10']:.4f}); plain "
             f"cascade on all queries: nDCG@10 {meta['plain_all_queries']['ndcg10']:.4f} with "
             f"{meta['plain_all_queries']['strong_per_query']:.0f} strong comparisons a query. Splits: calibration "
             f"half / test half of the queries; load average {meta.get('load_average_start', [0])[0]:.1f} at the "
             f"start, {meta['load_average'][0]:.1f} at the end.", "",
             "| reference | alpha | unit | delta | plain nDCG@10 | plain strong/query | escalation nDCG@10 | "
             "escalation strong/query | strong share | thresholds found (median) | agreement on kept, test "
             "(mean, min) | splits >= 1 - alpha |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        agreement = "-" if r["agreement_mean"] is None else f"{r['agreement_mean']:.3f}, {r['agreement_min']:.3f}"
        found = f"{r['thresholds_found']}/{len(r['splits'])}" + (
            "" if r["threshold_median"] is None else f" ({r['threshold_median']:.3f})")
        lines.append(f"| {r['reference']} | {r['alpha']} | {r.get('unit', 'pair')} | {r['delta']} | "
                     f"{r['plain_ndcg10']:.4f} | "
                     f"{r['plain_strong_per_query']:.0f} | {r['ndcg10']:.4f} | {r['strong_per_query']:.0f} | "
                     f"{r['strong_per_query'] / r['plain_strong_per_query']:.0%} | {found} | {agreement} | "
                     f"{r['guarantee_share']:.0%} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
