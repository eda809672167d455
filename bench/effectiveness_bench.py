"""Effectiveness of the embedded models on TREC DL 2019 passage, through ``rerank.pipeline.rerank``.

    .venv/bin/python bench/effectiveness_bench.py --out bench/results       # writes models_effectiveness.*

Parts (``--part``):
- ``minilm``: the ``minilm`` bi-encoder re-ranks the BM25 top 100 of every judged query (sampler ``all``,
  both orders, calibration ``symmetric``; aggregators ``bt`` and ``borda``), once per ONNX variant
  (``fp32`` and ``int8``). nDCG@10 over the 43 judged queries (graded qrels, unjudged = 0, as TREC DL). The
  int8 cost (nDCG@10 difference to fp32, per-query wins/losses) is written into the manifest of the
  measured model (``record_measurements``, key ``dl19``) unless ``--no-record``.
- ``smollm``: the ``smollm-prp`` PRP model on the BM25 top 20: every ordered pair is scored once (380 per
  query); from those, the one-order run (``both_orders=False``: one random slot per pair, calibration
  ``none``) and the symmetric run (both orders, calibration ``symmetric``) are aggregated (``bt`` and
  ``borda``). Queries are taken in the run file's order until ``--smollm-seconds`` of model time is spent (the
  query in progress finishes), so the count depends on the machine; it is in the results.

Models come from ``--store`` (default ``bench/cache/models``, git-ignored), exported there on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

from rerank.evaluation import evaluate, read_corpus, read_qrels, read_queries, read_run  # noqa: E402
from rerank.evaluation.trec import rank_docs  # noqa: E402
from rerank.models import ModelStore, ensure_embedded, load_model, record_measurements  # noqa: E402
from rerank.models.runtime import cpu_name, physical_cores  # noqa: E402
from rerank.pipeline import Candidate, RankOptions, rerank  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RERANK_DATA", ROOT.parent / "shared" / "data")) / "trec-dl-2019-passage"
AGGREGATORS = ("bt", "borda")
MEASURE = "ndcg@10"


class CachedComparator:
    """Answers ``compare_batch`` from a per-item cache, calling the model only for unseen items.

    Lets several aggregations of one query reuse the same model answers; counts the model's time."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: dict[tuple[str, str, str], float] = {}
        self.model_s = 0.0
        self.model_items = 0

    def compare_batch(self, items: Sequence[tuple[str, str, str]]) -> np.ndarray:
        todo = list(dict.fromkeys(it for it in items if it not in self.cache))
        if todo:
            t0 = time.perf_counter()
            p = np.asarray(self.model.compare_batch(todo).p, dtype=np.float64)
            self.model_s += time.perf_counter() - t0
            self.model_items += len(todo)
            self.cache.update(zip(todo, p.tolist(), strict=True))
        return np.fromiter((self.cache[it] for it in items), dtype=np.float64, count=len(items))

    def reset(self) -> None:
        self.cache.clear()


def load_collection(depth: int) -> tuple[dict, dict, dict, dict[str, list[str]]]:
    corpus = read_corpus(DATA / "corpus.jsonl")
    queries = read_queries(DATA / "queries.tsv")
    qrels = read_qrels(DATA / "qrels.txt")
    run = read_run(DATA / "run.bm25.top100.trec")
    ranked = {qid: rank_docs(scores)[:depth] for qid, scores in run.items() if qid in qrels}
    return corpus, queries, qrels, ranked


def ndcg(rankings: dict[str, list[str]], qrels: dict) -> tuple[float, dict[str, float]]:
    means, per_query = evaluate(rankings, qrels, measures=[MEASURE])
    return means[MEASURE], {q: v[MEASURE] for q, v in per_query.items()}


def rerank_query(comparator, query: str, docs: list[str], corpus: dict, options: RankOptions):
    cands = [Candidate(d, corpus[d]) for d in docs]
    result = rerank(query, cands, [comparator], options)
    # rerank returns every candidate; keep the tail in first-stage order as given
    return [r.id for r in result.results], result.usage


def paired(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    """Per-query comparison of b against a (same queries)."""
    diff = np.array([b[q] - a[q] for q in a])
    return {
        "mean_diff": float(diff.mean()),
        "queries_better": int((diff > 1e-12).sum()),
        "queries_worse": int((diff < -1e-12).sum()),
        "queries_same": int((np.abs(diff) <= 1e-12).sum()),
        "max_abs_diff": float(np.abs(diff).max()),
    }


# --- minilm ---------------------------------------------------------------------------------------------
def ensure_current(store: ModelStore, name: str, **options: Any) -> None:
    """Export ``name`` into ``store``, again when the cached export predates graph optimization or lacks
    the int8 variant (the bench cache outlives code changes)."""
    force = False
    if name in store:
        manifest = store.manifest(name)
        wanted = {"fp32", *(["int8"] if options.get("quantize") == "int8" else [])}
        force = not wanted <= set(manifest.variants) or "graph" not in manifest.variants["fp32"].to_dict()
    ensure_embedded(name, store=store, force=force, **options)


def bench_minilm(
    store: ModelStore, variants: Sequence[str], record: bool, max_queries: int | None = None
) -> dict[str, Any]:
    ensure_current(store, "minilm", quantize="int8")
    corpus, queries, qrels, ranked = load_collection(100)
    if max_queries is not None:
        ranked = dict(list(ranked.items())[:max_queries])
        record = False  # a partial run is no measurement of the model
    bm25, _ = ndcg(ranked, qrels)
    out: dict[str, Any] = {"queries": len(ranked), "depth": 100, "bm25_ndcg@10": bm25, "variants": {}}
    per_query_all: dict[str, dict[str, dict[str, float]]] = {}
    for variant in variants:
        model = load_model("minilm", store=store, variant=variant)
        comparator = CachedComparator(model)
        rankings: dict[str, dict[str, list[str]]] = {agg: {} for agg in AGGREGATORS}
        incons = []
        t0 = time.perf_counter()
        for qid, docs in ranked.items():
            comparator.reset()
            for agg in AGGREGATORS:
                opts = RankOptions(sampler="all", aggregator=agg, calibration="symmetric")
                order, usage = rerank_query(comparator, queries[qid], docs, corpus, opts)
                rankings[agg][qid] = order
            incons.append(usage.order_inconsistency)
        row: dict[str, Any] = {
            "provider": model.provider,
            "seconds": time.perf_counter() - t0,
            "model_seconds": comparator.model_s,
            "pairs": comparator.model_items,
            "pairs_per_s": comparator.model_items / comparator.model_s,
            "order_inconsistency": float(np.mean(incons)),
        }
        per_query_all[variant] = {}
        for agg in AGGREGATORS:
            mean, per_query = ndcg(rankings[agg], qrels)
            row[f"ndcg@10_{agg}"] = mean
            per_query_all[variant][agg] = per_query
        out["variants"][variant] = row
        print(json.dumps({"minilm": variant, **row}), flush=True)
    if "fp32" in per_query_all:
        for variant in variants:
            if variant == "fp32":
                continue
            out["variants"][variant]["vs_fp32"] = {
                agg: paired(per_query_all["fp32"][agg], per_query_all[variant][agg]) for agg in AGGREGATORS
            }
    out["per_query"] = per_query_all
    if record and "fp32" in out["variants"]:
        folder = store.path("minilm")
        for variant, row in out["variants"].items():
            figures = {
                "collection": "trec-dl-2019-passage",
                "queries": out["queries"],
                "depth": 100,
                "pipeline": "sampler all (both orders), calibration symmetric",
                **{f"ndcg@10_{agg}": row[f"ndcg@10_{agg}"] for agg in AGGREGATORS},
                "pairs_per_s_in_pipeline": row["pairs_per_s"],
            }
            if variant != "fp32":
                fp32 = out["variants"]["fp32"]
                figures["ndcg@10_cost_vs_fp32"] = {
                    agg: fp32[f"ndcg@10_{agg}"] - row[f"ndcg@10_{agg}"] for agg in AGGREGATORS
                }
                figures["speedup_vs_fp32_in_pipeline"] = row["pairs_per_s"] / fp32["pairs_per_s"]
            record_measurements(folder, variant, "dl19", figures)
        out["recorded_into"] = str(folder / "manifest.json")
    return out


# --- smollm ---------------------------------------------------------------------------------------------
def cached_answers(folder: Path, qid: str, query: str, docs: list[str], corpus: dict) -> dict | None:
    """The model's answers for every ordered pair of ``docs`` from a ``rerank bench budgets`` preference
    cache (``<folder>/<qid>.npz``: docids and P[i, j] = p(docs[i], docs[j])), or None when it has none."""
    from rerank.bench.budgets import query_cache_file

    path = query_cache_file(folder, qid)
    if not path.is_file():
        return None
    saved = np.load(path, allow_pickle=False)
    if list(saved["docids"]) != docs:
        return None
    P = saved["P"]
    return {
        (query, corpus[a], corpus[b]): float(P[i, j])
        for i, a in enumerate(docs)
        for j, b in enumerate(docs)
        if i != j
    }


def bench_smollm(
    store: ModelStore, depth: int, seconds: float, max_queries: int | None, preferences: Path | None = None
) -> dict[str, Any]:
    ensure_current(store, "smollm-prp")
    model = load_model("smollm-prp", store=store)
    corpus, queries, qrels, ranked = load_collection(depth)
    comparator = CachedComparator(model)
    replayed = 0
    runs = {
        "one_order": dict(both_orders=False, calibration="none"),
        "symmetric": dict(both_orders=True, calibration="symmetric"),
    }
    rankings: dict[str, dict[str, list[str]]] = {f"{r}_{a}": {} for r in runs for a in AGGREGATORS}
    bm25_rankings: dict[str, list[str]] = {}
    incons, trans, share_a = [], [], []
    done = []
    for qid, docs in ranked.items():
        if comparator.model_s >= seconds or (max_queries is not None and len(done) >= max_queries):
            break
        comparator.reset()
        if preferences is not None:  # the answers of a budgets run: only queries it scored, no model time
            answers = cached_answers(preferences, qid, queries[qid], docs, corpus)
            if answers is None:
                continue
            comparator.cache.update(answers)
            replayed += 1
        # the symmetric run first: it scores every ordered pair; the one-order run reads from the cache
        for run_name in ("symmetric", "one_order"):
            for agg in AGGREGATORS:
                opts = RankOptions(sampler="all", aggregator=agg, seed=0, **runs[run_name])
                order, usage = rerank_query(comparator, queries[qid], docs, corpus, opts)
                rankings[f"{run_name}_{agg}"][qid] = order
                if run_name == "symmetric" and agg == AGGREGATORS[0]:
                    incons.append(usage.order_inconsistency)
                    trans.append(usage.transitive_inconsistency)
        bm25_rankings[qid] = docs
        share_a.append(float(np.mean(np.fromiter(comparator.cache.values(), dtype=np.float64) > 0.5)))
        done.append(qid)
        print(
            json.dumps({"smollm_query": qid, "n": len(done), "model_s": round(comparator.model_s, 1)}),
            flush=True,
        )
    bm25, bm25_per_query = ndcg(bm25_rankings, qrels)
    out: dict[str, Any] = {
        "queries": len(done),
        "query_ids": done,
        "depth": depth,
        "provider": model.provider,
        "variant": model.variant,
        "pairs": comparator.model_items,
        "model_seconds": comparator.model_s,
        "pairs_per_s": comparator.model_items / comparator.model_s if comparator.model_s else 0.0,
        "replayed_queries": replayed,
        "preferences": str(preferences) if preferences is not None else None,
        "order_inconsistency": float(np.mean(incons)) if incons else 0.0,
        "transitive_inconsistency": float(np.mean(trans)) if trans else 0.0,
        "share_a": float(np.mean(share_a)) if share_a else 0.0,  # answers with p > 0.5: the first slot
        "bm25_ndcg@10_same_queries": bm25,
        "ndcg@10": {},
        "per_query": {"bm25": bm25_per_query},
    }
    for key, rk in rankings.items():
        mean, per_query = ndcg(rk, qrels)
        out["ndcg@10"][key] = mean
        out["per_query"][key] = per_query
    return out


# --- output ---------------------------------------------------------------------------------------------
def write(out_dir: Path, results: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "models_effectiveness.json").write_text(json.dumps(results, indent=2) + "\n")
    meta = results["meta"]
    lines = [
        "# Model effectiveness on TREC DL 2019 passage (re-ranking BM25 through `rerank.pipeline.rerank`)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['cpu']}, {meta['threads']} threads (shared with other jobs; times are "
        "indicative).  ",
        "nDCG@10 with graded qrels (unjudged = 0), averaged over the judged queries re-ranked.",
        "",
    ]
    if "minilm" in results:
        m = results["minilm"]
        lines += [
            f"## minilm bi-encoder, BM25 top {m['depth']}, {m['queries']} queries",
            "",
            f"Sampler `all` (both orders, {m['depth'] * (m['depth'] - 1):,} comparisons per query), "
            f"calibration `symmetric`. BM25 nDCG@10: {m['bm25_ndcg@10']:.4f}.",
            "",
            "| variant | provider | nDCG@10 bt | nDCG@10 borda | cost vs fp32 (bt / borda) "
            "| queries worse / better (bt) | pairs/s in pipeline | order inconsistency |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for variant, row in m["variants"].items():
            vs = row.get("vs_fp32")
            cost = f"{-vs['bt']['mean_diff']:+.4f} / {-vs['borda']['mean_diff']:+.4f}" if vs else "-"
            wl = f"{vs['bt']['queries_worse']} / {vs['bt']['queries_better']}" if vs else "-"
            lines.append(
                f"| {variant} | {row['provider']} | {row['ndcg@10_bt']:.4f} | {row['ndcg@10_borda']:.4f} | "
                f"{cost} | {wl} | {row['pairs_per_s']:,.0f} | {row['order_inconsistency']:.3f} |"
            )
        lines += [
            "",
            "Cost = nDCG@10(fp32) - nDCG@10(variant) (positive = the variant is worse).",
        ]
        if m.get("recorded_into"):
            lines.append(f"Recorded into `{m['recorded_into']}` under `variants.<v>.measured.dl19`.")
        lines.append("")
    if "smollm" in results:
        s = results["smollm"]
        n = s["queries"]
        lines += [
            f"## smollm-prp (SmolLM2-135M-Instruct, PRP), BM25 top {s['depth']}, {n} queries",
            "",
            (
                f"{s['variant']} on {s['provider']}: answers read from the preference cache of a `rerank bench "
                f"budgets` run ({s['preferences']}), which scored every ordered pair of these queries; no model time "
                f"is measured here. Queries: the {n} judged queries that cache holds ({', '.join(s['query_ids'])})."
            )
            if s.get("replayed_queries")
            else (
                f"{s['variant']} on {s['provider']}: {s['pairs']:,} ordered pairs scored in "
                f"{s['model_seconds']:.0f} s of model time ({s['pairs_per_s']:.2f} pairs/s). Queries: the first "
                f"{n} judged queries in the run file's order, as many as fit in the time budget "
                f"({', '.join(s['query_ids'])})."
            ),
            "",
            "| run | comparisons per query | calibration | nDCG@10 bt | nDCG@10 borda |",
            "| --- | ---: | --- | ---: | ---: |",
            f"| BM25 (same queries) | - | - | {s['bm25_ndcg@10_same_queries']:.4f} | |",
        ]
        k = s["depth"]
        runs = (("one_order", k * (k - 1) // 2, "none"), ("symmetric", k * (k - 1), "symmetric"))
        for run, per, cal in runs:
            lines.append(
                f"| {run.replace('_', ' ')} | {per} | {cal} | {s['ndcg@10'][run + '_bt']:.4f} | "
                f"{s['ndcg@10'][run + '_borda']:.4f} |"
            )
        lines += [
            "",
            f"Order inconsistency (pairs seen in both orders where the same slot won twice): "
            f"{s['order_inconsistency']:.3f}; transitive inconsistency: {s['transitive_inconsistency']:.3f}; "
            f"share of answers for the first slot (p > 0.5, \"A\"): {s.get('share_a', 0.0):.3f}.",
            "",
        ]
    (out_dir / "models_effectiveness.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--store", type=Path, default=ROOT / "bench" / "cache" / "models")
    parser.add_argument("--part", choices=["all", "minilm", "smollm"], default="all")
    parser.add_argument("--variants", default="fp32,int8", help="minilm: ONNX variants, comma-separated")
    parser.add_argument("--no-record", action="store_true", help="do not write the figures into the manifest")
    parser.add_argument("--minilm-queries", type=int, default=None, help="minilm: first N queries (smoke)")
    parser.add_argument("--smollm-depth", type=int, default=20)
    parser.add_argument("--smollm-seconds", type=float, default=540.0, help="model-time budget for smollm")
    parser.add_argument("--smollm-queries", type=int, default=None, help="at most this many queries")
    parser.add_argument(
        "--smollm-preferences",
        type=Path,
        default=None,
        help="smollm: read the answers from a `rerank bench budgets` preference cache folder (.../depth20) "
        "instead of running the model; only the queries it holds",
    )
    args = parser.parse_args(argv)

    threads = physical_cores()
    os.environ.setdefault("RERANK_ORT_THREADS", str(threads))
    store = ModelStore(args.store)
    results: dict[str, Any] = {}
    out_json = args.out / "models_effectiveness.json"
    if args.part != "all" and out_json.is_file():  # keep the other part's figures
        previous = json.loads(out_json.read_text())
        results.update({k: v for k, v in previous.items() if k in ("minilm", "smollm")})
    if args.part in ("all", "minilm"):
        results["minilm"] = bench_minilm(
            store, args.variants.split(","), not args.no_record, args.minilm_queries
        )
    if args.part in ("all", "smollm"):
        results["smollm"] = bench_smollm(
            store, args.smollm_depth, args.smollm_seconds, args.smollm_queries, args.smollm_preferences
        )
    import onnxruntime

    command = "python bench/effectiveness_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results["meta"] = {
        "command": command.strip(),
        "cpu": cpu_name(),
        "threads": threads,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }
    write(args.out, results)
    print(f"wrote {args.out / 'models_effectiveness.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
