"""First-stage dense retrieval: quality on Cranfield and CISI, and FAISS index speed/recall at scale.

    .venv/bin/python bench/retrieval_bench.py --part quality --out bench/results
    .venv/bin/python bench/retrieval_bench.py --part scale --out bench/results

Both parts update ``retrieval.json`` (one key per part) and rewrite ``retrieval.md`` from it.

quality: per collection, ``build_index`` (minilm, flat, empty documents skipped) -> ``Index.search`` of every
query (top 100) -> nDCG@10 and recall@100 over the judged queries, next to the BM25 run of the data folder;
then the pairwise pipeline (``rerank.pipeline.rerank``, minilm, sampler ``all``, ``bt`` + ``symmetric``: the
defaults) re-ranks the dense top 100, the BM25 top 100 and the RRF hybrid top 100. The minilm comparator
here is the model with its embeddings cached by text (the index's passage vectors, the queries' vectors):
p = sigmoid((cos(q, a) - cos(q, b)) / T) exactly as ``BiEncoder.postprocess`` computes it; the bench checks
it against ``model.compare_batch`` on a sample. Hybrid: ``reciprocal_rank_fusion`` (k = 60) of the BM25 top
100 and the dense top 100.

scale: random unit vectors (384-d) -> flat (exact), HNSW, IVF-PQ (+ exact re-scoring, IndexRefineFlat) and
IVF-Flat at 100K and 1M; recall@10 against the exact top 10 over 1,000 queries, p50 / p95 latency of
single-query searches, and batched throughput; efSearch / nprobe tuned upward until recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rerank.aggregation.fusion.rrf import reciprocal_rank_fusion
from rerank.evaluation import evaluate, kendall_tau, read_qrels, read_run, run_to_rankings
from rerank.models import ModelStore, ensure_embedded, load_model
from rerank.models.kind import sigmoid
from rerank.pipeline import Candidate, RankOptions, rerank
from rerank.retrieval import Index, Progress, build_index
from rerank.retrieval.corpus import read_query_file

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RERANK_DATA", ROOT.parent / "shared" / "data"))
CACHE = ROOT / "bench" / "cache"
BM25_README = {"cranfield": 0.3433, "cisi": 0.3725}  # /work/shared/data/README.md
MEASURES = ("ndcg@10", "recall@100")
DEPTH = 100


# --- quality --------------------------------------------------------------------------------------------
class CachedBiEncoder:
    """The bi-encoder comparator with its embeddings cached by (role, text); p as the model computes it."""

    def __init__(self, model: Any, cache: dict[tuple[str, str], np.ndarray]) -> None:
        self.model = model
        self.cache = cache
        self.temperature = float(model.spec.options.get("temperature", 0.05))
        self.encoded = 0

    def _vectors(self, role: str, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in texts if (role, t) not in self.cache]
        if missing:
            for t, v in zip(missing, self.model.embed(missing, role=role), strict=True):
                self.cache[(role, t)] = v
            self.encoded += len(missing)
        return np.stack([self.cache[(role, t)] for t in texts]).astype(np.float64)

    def compare_batch(self, items: Sequence[tuple[str, str, str]]) -> np.ndarray:
        queries: dict[str, int] = {}
        passages: dict[str, int] = {}
        n = len(items)
        qi = np.fromiter((queries.setdefault(q, len(queries)) for q, _, _ in items), dtype=np.int64, count=n)
        ai = np.fromiter((passages.setdefault(a, len(passages)) for _, a, _ in items), dtype=np.int64, count=n)
        bi = np.fromiter((passages.setdefault(b, len(passages)) for _, _, b in items), dtype=np.int64, count=n)
        cos = self._vectors("query", list(queries)) @ self._vectors("passage", list(passages)).T
        return sigmoid((cos[qi, ai] - cos[qi, bi]) / self.temperature)


def pipeline_rerank(
    comparator: CachedBiEncoder, queries: dict[str, str], rankings: dict[str, list[str]], texts: dict[str, str],
    options: RankOptions,
) -> tuple[dict[str, list[str]], float, int]:
    """Re-rank each query's list with the pipeline; returns rankings, seconds per query, dropped empties."""
    out: dict[str, list[str]] = {}
    dropped = 0
    t0 = time.perf_counter()
    for qid, ranking in rankings.items():
        docs = [d for d in ranking[:DEPTH] if texts.get(d, "").strip()]
        dropped += min(len(ranking), DEPTH) - len(docs)
        cands = [Candidate(d, texts[d]) for d in docs]
        result = rerank(queries[qid], cands, [comparator], options)
        out[qid] = [r.id for r in result.results]
    return out, (time.perf_counter() - t0) / max(len(rankings), 1), dropped


def rrf(a: dict[str, list[str]], b: dict[str, list[str]], k: int = 60) -> dict[str, list[str]]:
    out = {}
    for qid in a:
        items = list(dict.fromkeys([*a[qid][:DEPTH], *b.get(qid, [])[:DEPTH]]))
        pos = {d: i for i, d in enumerate(items)}
        fused = reciprocal_rank_fusion(
            [np.array([pos[d] for d in a[qid][:DEPTH]]), np.array([pos[d] for d in b.get(qid, [])[:DEPTH]])],
            len(items), k=k,
        )
        out[qid] = [items[i] for i in fused.ranking()][:DEPTH]
    return out


def quality_dataset(name: str, model: Any, args: argparse.Namespace) -> dict[str, Any]:
    folder = DATA / name
    idx_dir = CACHE / "indexes" / f"{name}-{model.name}-flat"
    print(f"[{name}] building {idx_dir}", file=sys.stderr)
    report = build_index(folder / "corpus.jsonl", idx_dir, model, index_type="flat", skip_empty=True,
                         force=not args.reuse, progress=Progress(stream=sys.stderr, interval_s=15))
    queries = read_query_file(folder / "queries.tsv")
    qrels = read_qrels(folder / "qrels.txt")
    bm25_path = next(folder.glob("run.*.trec"))
    bm25 = run_to_rankings(read_run(bm25_path))
    judged = [q for q in queries if q in qrels and any(g > 0 for g in qrels[q].values())]
    with Index.open(idx_dir, model) as index:
        qids = list(queries)
        t0 = time.perf_counter()
        qvec = index.embed_queries([queries[q] for q in qids])
        embed_q_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        _, rows = index.search_vectors(qvec, DEPTH)
        search_s = time.perf_counter() - t1
        docs = index.docstore.get_rows(sorted({int(r) for r in rows.ravel() if r >= 0}))
        dense = {q: [docs[int(r)].id for r in rows[i] if r >= 0] for i, q in enumerate(qids)}
        passage_vecs = index._cpu.reconstruct_n(0, index.count)
        texts = {d.id: d.text for d in index.docstore.iter_docs()}
        rows_of = {d.id: d.row for d in index.docstore.iter_docs()}
    # comparator cache: the index's passage vectors and the queries' vectors
    cache: dict[tuple[str, str], np.ndarray] = {("passage", texts[d]): passage_vecs[r] for d, r in rows_of.items()}
    cache.update({("query", queries[q]): qvec[i] for i, q in enumerate(qids)})
    comparator = CachedBiEncoder(model, cache)
    # check: the cached comparator answers as the model does
    q0 = judged[0]
    sample = [(queries[q0], texts[a], texts[b]) for a, b in zip(dense[q0][:20], dense[q0][20:40], strict=True)]
    direct = np.asarray(model.compare_batch(sample), dtype=np.float64)
    check = float(np.max(np.abs(direct - comparator.compare_batch(sample))))
    # also check the index vectors match a fresh embedding
    fresh = model.embed([texts[dense[q0][0]]], role="passage")[0]
    vec_check = float(np.max(np.abs(fresh - passage_vecs[rows_of[dense[q0][0]]])))
    options = RankOptions()
    runs: dict[str, dict[str, list[str]]] = {"bm25": {q: bm25.get(q, []) for q in qids}, "dense": dense}
    runs["hybrid_rrf"] = rrf(runs["bm25"], dense)
    rerank_s: dict[str, float] = {}
    dropped: dict[str, int] = {}
    for first in ("dense", "bm25", "hybrid_rrf"):
        subset = {q: runs[first][q] for q in judged}
        print(f"[{name}] re-ranking {first} top {DEPTH} of {len(subset)} judged queries", file=sys.stderr)
        runs[f"{first}>minilm"], rerank_s[first], dropped[first] = pipeline_rerank(
            comparator, queries, subset, texts, options
        )
    rows_out = []
    for key, ranking in runs.items():
        means, _ = evaluate({q: ranking[q] for q in judged}, qrels, MEASURES)
        rows_out.append({"run": key, **{m: means[m] for m in MEASURES}})
    taus = [kendall_tau(runs["dense"][q][:DEPTH], runs["dense>minilm"][q]) for q in judged
            if len(runs["dense"][q]) == len(runs["dense>minilm"][q])]
    return {
        "collection": name,
        "documents": report.count,
        "skipped_empty": report.skipped_empty,
        "queries": len(queries),
        "judged_queries": len(judged),
        "bm25_run": bm25_path.name,
        "bm25_ndcg10_readme": BM25_README.get(name),
        "build": {"embed_s": report.embed_s, "index_s": report.index_s, "docs_per_s": report.docs_per_s,
                  "up_to_date": report.up_to_date},
        "query_embed_ms": 1000 * embed_q_s / len(qids),
        "search_ms_per_query_batched": 1000 * search_s / len(qids),
        "rerank_s_per_query": rerank_s,
        "dropped_empty_candidates": dropped,
        "comparator_check_max_abs_dp": check,
        "index_vector_check_max_abs": vec_check,
        "kendall_tau_dense_vs_reranked_mean": float(np.mean(taus)),
        "results": rows_out,
        "options": {"sampler": options.sampler, "aggregator": options.aggregator, "calibration": options.calibration,
                    "depth": DEPTH, "rrf_k": 60},
    }


def part_quality(args: argparse.Namespace) -> dict[str, Any]:
    store = ModelStore(CACHE / "models")
    ensure_embedded("minilm", store=store)
    model = load_model("minilm", store=store)
    out = {"model": "minilm", "provider": model.provider, "datasets": {}}
    for name in args.datasets:
        out["datasets"][name] = quality_dataset(name, model, args)
        print(json.dumps(out["datasets"][name]["results"]), file=sys.stderr)
    return out


# --- scale ----------------------------------------------------------------------------------------------
def random_unit(n: int, dim: int, seed: int, data: str = "iid", centres: np.ndarray | None = None) -> np.ndarray:
    """``n`` unit vectors: ``iid`` Gaussian, or ``clustered``: a random centre (of ``centres``) plus Gaussian
    noise of the same expected norm (two points of one cluster have cosine about 0.5)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        size = min(100_000, n - s)
        block = rng.standard_normal((size, dim), dtype=np.float32)
        if data == "clustered":
            assert centres is not None
            block /= np.float32(np.sqrt(dim))
            block += centres[rng.integers(0, len(centres), size)]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s : s + len(block)] = block
    return out


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    hits = sum(len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (k * len(truth))


def latency(index: Any, queries: np.ndarray, k: int, params: Any = None) -> dict[str, float]:
    times = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(q[None, :], k, params=params)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    index.search(queries, k, params=params)
    batched = time.perf_counter() - t0
    return {
        "p50_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * float(np.percentile(times, 95)),
        "batched_qps": len(queries) / batched,
    }


def scale_size(n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    import faiss

    from rerank.retrieval.index import make_index, resolve_params, search_parameters, train_index

    dim, k = args.dim, 10
    t0 = time.perf_counter()
    centres = None
    if args.data == "clustered":
        centres = random_unit(max(1, n // args.cluster_size), dim, seed=3)
    xb = random_unit(n, dim, seed=1, data=args.data, centres=centres)
    xq = random_unit(args.queries, dim, seed=2, data=args.data, centres=centres)
    gen_s = time.perf_counter() - t0
    rows = []
    flat = faiss.IndexFlatIP(dim)
    t0 = time.perf_counter()
    flat.add(xb)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, truth = flat.search(xq, k)
    truth_s = time.perf_counter() - t0
    lat = latency(flat, xq[: args.latency_queries], k)
    rows.append({"n": n, "index": "flat", "params": {}, "build_s": build_s, "recall@10": 1.0, **lat,
                 "note": f"exact; ground truth for {len(xq)} queries in {truth_s:.1f} s"})
    print(json.dumps(rows[-1]), file=sys.stderr)
    del flat
    for index_type in args.types:
        if index_type == "hnsw" and n > args.hnsw_max:
            rows.append({"n": n, "index": "hnsw", "skipped": f"not run above {args.hnsw_max:,} vectors (build time)"})
            continue
        given: dict[str, Any] = {}
        if index_type in ("ivf", "ivfpq"):
            given["train_points"] = args.train_points
            if args.nlist:
                given["nlist"] = args.nlist
        if index_type == "hnsw":
            given.update({"M": args.hnsw_m, "efConstruction": args.ef_construction})
        params = resolve_params(index_type, n, dim, given)
        index = make_index(index_type, dim, params)
        t0 = time.perf_counter()
        train_index(index, xb, params)
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        for s in range(0, n, 100_000):
            index.add(xb[s : s + 100_000])
        build_s = time.perf_counter() - t0
        add_s = time.perf_counter() - t1
        knob = "efSearch" if index_type == "hnsw" else "nprobe"
        ladder = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
        if knob == "nprobe":
            ladder = [v for v in ladder if v < params["nlist"]] + [params["nlist"]]
        steps = [{knob: v} for v in dict.fromkeys(ladder)]
        if index_type == "ivfpq":  # then more exact re-scoring at the last nprobe
            params["k_factor"] = args.k_factor
            factors = (16, 32, 64, 128, 256, 512, 1024, 2048)
            steps += [{knob: ladder[-1], "k_factor": f} for f in factors if f > args.k_factor]
        tried = []
        chosen = None
        for step in steps:
            p = {**params, **step}
            sp = search_parameters(index_type, p)
            _, found = index.search(xq, k, params=sp[0])
            r = recall_at(found, truth, k)
            tried.append({**step, "recall@10": r})
            print(f"  n={n} {index_type} {step}: recall@10 {r:.4f}", file=sys.stderr)
            if r >= args.target:
                chosen = (p, r, sp)
                break
        if chosen is None:
            p = {**params, **steps[-1]}
            r, sp = tried[-1]["recall@10"], search_parameters(index_type, p)
        else:
            p, r, sp = chosen
        extra = {}
        if index_type == "ivfpq":  # the PQ codes alone (no exact re-scoring) at the chosen nprobe
            _, found = index.search(xq, k, params=search_parameters(index_type, {**p, "k_factor": 1})[0])
            extra["pq_only_recall@10"] = recall_at(found, truth, k)
        lat = latency(index, xq[: args.latency_queries], k, sp[0])
        rows.append({"n": n, "index": index_type, "params": p, "train_s": train_s, "add_s": add_s,
                     "build_s": build_s, "recall@10": r, **lat, **extra, "ladder": tried,
                     "reached_target": chosen is not None})
        print(json.dumps({k2: v for k2, v in rows[-1].items() if k2 != "ladder"}), file=sys.stderr)
        del index
    for row in rows:
        row["generate_s"] = gen_s
    return rows


def part_scale(args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for n in args.sizes:
        rows.extend(scale_size(n, args))
    return {"data": args.data, "cluster_size": args.cluster_size if args.data == "clustered" else None,
            "dim": args.dim, "queries": args.queries, "latency_queries": args.latency_queries,
            "target_recall@10": args.target, "threads": args.threads, "train_points": args.train_points,
            "faiss": faiss.__version__, "rows": rows}


# --- report ---------------------------------------------------------------------------------------------
def fmt(x: Any, nd: int = 4) -> str:
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _fig(d: dict[str, Any], run: str, measure: str = "ndcg@10") -> str:
    return f"{next(r[measure] for r in d['results'] if r['run'] == run):.3f}"


def render(results: dict[str, Any]) -> str:
    lines = ["# First-stage dense retrieval (FAISS) and retrieve-then-rerank", ""]
    m = results.get("machine", {})
    lines.append(f"Machine: {m.get('cpus')} CPUs ({m.get('processor')}), python {m.get('python')}, "
                 f"faiss {m.get('faiss')}; shared with other jobs while this ran, so treat timings as rough.")
    lines.append("")
    q = results.get("quality")
    if q:
        lines += ["## Quality: Cranfield and CISI", "", f"Command: `{results['commands']['quality']}`", ""]
        lines.append(
            "Dense = minilm (all-MiniLM-L6-v2, ONNX fp32, passages cut to 254 tokens, queries to 64) in a flat "
            "(exact) FAISS index. `X>minilm` = the top 100 of X re-ranked by the pairwise pipeline with minilm "
            "(sampler all, bt, symmetric calibration). Hybrid = RRF (k = 60) of the BM25 and dense top 100. "
            "Means over the judged queries only."
        )
        lines.append("")
        for name, d in q["datasets"].items():
            lines.append(f"### {name}: {d['documents']:,} documents indexed ({d['skipped_empty']} empty left out), "
                         f"{d['judged_queries']} judged queries of {d['queries']}")
            lines.append("")
            lines.append("| run | nDCG@10 | recall@100 |")
            lines.append("| --- | ---: | ---: |")
            for row in d["results"]:
                lines.append(f"| {row['run']} | {row['ndcg@10']:.4f} | {row['recall@100']:.4f} |")
            lines.append("")
            b = d["build"]
            lines.append(
                f"BM25 nDCG@10 in the data README: {d['bm25_ndcg10_readme']}. Index build: "
                f"{b['docs_per_s']:.1f} docs/s (embedding {b['embed_s']:.1f} s + indexing {b['index_s']:.2f} s). "
                f"Query embedding {d['query_embed_ms']:.1f} ms/query, exact search "
                f"{d['search_ms_per_query_batched']:.3f} ms/query (batched). Re-ranking 100 candidates: "
                + ", ".join(f"{k} {v * 1000:.0f} ms/query" for k, v in d["rerank_s_per_query"].items())
                + f" (cached embeddings; comparator check max |dp| = {d['comparator_check_max_abs_dp']:.1e}). "
                f"Mean Kendall tau, dense order vs dense>minilm: {d['kendall_tau_dense_vs_reranked_mean']:.3f}."
            )
            lines.append("")
        taus = ", ".join(f"{n} {d['kendall_tau_dense_vs_reranked_mean']:.3f}" for n, d in q["datasets"].items())
        lines.append(
            "A bi-encoder re-ranking its own retrieval reproduces its order: the pairwise p of minilm is "
            "sigmoid((cos(q, a) - cos(q, b)) / T), a monotone function of the same cosine the index ranked by, so "
            "`dense>minilm` could differ from `dense` only where the aggregator (Bradley-Terry over all 9,900 "
            f"ordered pairs) reorders near-ties; here it did not (mean Kendall tau {taus}), and the figures are "
            "identical. For the same reason `hybrid_rrf>minilm` scores as `dense` at nDCG@10: re-ranking with "
            "minilm sorts the hybrid top 100 by minilm's cosine, and that top 100 holds the dense top 10. "
            "Re-ranking BM25 candidates is the one re-ranking here that adds information: nDCG@10 of "
            + "; ".join(
                f"{n} bm25 {_fig(d, 'bm25')}, dense {_fig(d, 'dense')}, bm25>minilm {_fig(d, 'bm25>minilm')}, "
                f"hybrid_rrf {_fig(d, 'hybrid_rrf')}"
                for n, d in q["datasets"].items()
            )
            + ". The RRF hybrid needs no model call per candidate and is the best run measured here; the pairwise "
            "re-ranker is meant for comparators (cross-encoders, LLMs) that know more than the first stage."
        )
        lines.append("")
    for data, s in results.get("scale", {}).items():
        title = {"iid": "iid Gaussian", "clustered": "clustered"}.get(data, data)
        lines += [f"## Scale: random vectors, {title}", "", "Commands (the rows each produced are marked):", ""]
        commands = list(dict.fromkeys(r.get("command", "") for r in s["rows"]))
        for i, c in enumerate(commands, start=1):
            lines.append(f"{i}. `{c}`")
        lines.append("")
        what = (
            "random unit vectors (iid Gaussian, normalised: no structure, the hardest case for approximate search)"
            if data == "iid"
            else f"clustered random unit vectors (a random centre per {s['cluster_size']} points plus Gaussian noise "
            "of the same norm; two points of one cluster have cosine about 0.5)"
        )
        lines.append(
            f"{s['dim']}-d {what}; {s['queries']:,} random queries drawn the same way for recall@10 against exact "
            f"search; latency over the first {s['latency_queries']} queries one at a time (p50, p95) and all "
            f"{s['queries']:,} batched (qps); FAISS {s['faiss']} on {s['threads']} threads. efSearch / nprobe "
            f"tuned up a ladder until recall@10 >= {s['target_recall@10']}. IVF indexes are trained on "
            "train_points sampled vectors (fewer than FAISS asks for at 1M, to keep the build short). "
            "Build s = train + add."
        )
        lines.append("")
        lines.append("| n | index | setting | build s | recall@10 | p50 ms | p95 ms | batched qps | command |")
        lines.append("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in s["rows"]:
            cmd = commands.index(r.get("command", "")) + 1
            if "skipped" in r:
                lines.append(f"| {r['n']:,} | {r['index']} | {r['skipped']} | | | | | | {cmd} |")
                continue
            p = r["params"]
            setting = ", ".join(f"{k}={v}" for k, v in p.items()) or "exact"
            flag = "" if r.get("reached_target", True) else " (below target)"
            lines.append(
                f"| {r['n']:,} | {r['index']} | {setting} | {r['build_s']:.1f} | {r['recall@10']:.3f}{flag} | "
                f"{r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['batched_qps']:,.0f} | {cmd} |"
            )
        lines.append("")
        lines.append("Recall@10 along the tuning ladder:")
        lines.append("")
        for r in s["rows"]:
            if r.get("ladder"):
                steps = ", ".join(
                    "/".join(f"{k}={v}" for k, v in x.items() if k != "recall@10") + f": {x['recall@10']:.3f}"
                    for x in r["ladder"]
                )
                lines.append(f"- {r['n']:,} {r['index']}: {steps}")
                if "pq_only_recall@10" in r:
                    lines.append(f"  (PQ codes alone, no exact re-scoring, at the chosen nprobe: "
                                 f"{r['pq_only_recall@10']:.3f})")
        lines.append("")
        hnsw = {r["n"]: r for r in s["rows"] if r["index"] == "hnsw"}
        built = [r for r in hnsw.values() if "build_s" in r]
        skipped = [r for r in hnsw.values() if "skipped" in r]
        if built and skipped:
            b = max(built, key=lambda r: r["n"])
            lines.append(
                f"HNSW above {b['n']:,} vectors was not run: its build took {b['build_s']:.0f} s at {b['n']:,} on "
                f"this machine, so {skipped[0]['n']:,} would take over {skipped[0]['n'] // b['n']} times as long "
                "(each insertion searches the graph, whose cost grows with n), far beyond a few minutes."
            )
            lines.append("")
        for r in s["rows"]:
            if r["index"] == "hnsw" and "build_s" in r and not r.get("reached_target", True):
                best = r["ladder"][-1]
                lines.append(
                    f"HNSW at {r['n']:,} was built with M={r['params']['M']}, efConstruction="
                    f"{r['params']['efConstruction']} to keep its build short (it still took {r['build_s']:.0f} s) "
                    f"and stays below the target: recall@10 {best['recall@10']:.3f} at efSearch {best['efSearch']}. "
                    "A graph this sparse (likely too few links between the clusters) needs a very wide search; "
                    "the settings that reach the target at 100K (M=32, efConstruction=80) were not run at this size "
                    "(a build of well over 10 minutes here). For 1M vectors on this machine IVF-PQ is the index "
                    "that reaches the target within the build time allowed."
                )
                lines.append("")
        if data == "iid":
            lines.append(
                "iid vectors have no neighbourhood structure (the 10th neighbour is barely closer than a random "
                "vector), so approximate search gains little: IVF finds the neighbours only when it probes every "
                "list (nprobe = nlist), and the recall then rests on how many PQ candidates are re-scored exactly; "
                "HNSW needs efSearch 2048 at 100K. The clustered set below is closer to real embeddings. IVF-PQ "
                "with every list probed is still faster than flat per query: it scans 48-byte codes instead of "
                "1,536-byte vectors and re-scores only k_factor * k of them."
            )
            lines.append("")
        lines.append(
            "IVF-PQ here is `IndexRefineFlat(IndexIVFPQ)`: PQ codes (pq_m sub-quantizers of nbits bits) pick "
            "k_factor * k candidates that are re-scored with exact inner products on the stored vectors, so its "
            "memory is that of flat plus the codes; PQ alone does not reach 0.95 (the figure in brackets)."
        )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["quality", "scale", "render"], required=True,
                        help="render: rewrite retrieval.md from retrieval.json")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--datasets", nargs="+", default=["cranfield", "cisi"])
    parser.add_argument("--reuse", action="store_true", help="quality: reuse cached indexes (no build timing)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--types", nargs="+", default=["hnsw", "ivfpq"])
    parser.add_argument("--k-factor", type=int, default=8, help="scale, ivfpq: first exact re-scoring factor")
    parser.add_argument("--merge", action="store_true", help="scale: keep earlier rows of other (n, index)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--data", choices=["iid", "clustered"], default="iid", help="scale: the random vectors")
    parser.add_argument("--cluster-size", type=int, default=100, help="scale, clustered: points per centre")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-points", type=int, default=50_000)
    parser.add_argument("--nlist", type=int, default=None)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--hnsw-max", type=int, default=10**9, help="skip HNSW above this many vectors")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "retrieval.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if args.part == "render":
        (out / "retrieval.md").write_text(render(results))
        return 0
    import faiss

    results["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(), "faiss": faiss.__version__,
                          "numpy": np.__version__}
    command = ".venv/bin/python bench/retrieval_bench.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    if args.part == "quality":
        results.setdefault("commands", {})["quality"] = command
        results["quality"] = part_quality(args)
    else:
        new = part_scale(args)
        for row in new["rows"]:
            row["command"] = command
        old = results.setdefault("scale", {}).get(args.data)
        if old and args.merge:  # rows of this run replace the same (n, index) rows of earlier runs
            for row in old["rows"]:
                row.setdefault("command", results.get("commands", {}).get(f"scale_{args.data}", ""))
            keys = {(r["n"], r["index"]) for r in new["rows"]}
            order = {"flat": 0, "hnsw": 1, "ivf": 2, "ivfpq": 3}
            rows = [r for r in old["rows"] if (r["n"], r["index"]) not in keys] + new["rows"]
            new["rows"] = sorted(rows, key=lambda r: (r["n"], order.get(r["index"], 9)))
        results["scale"][args.data] = new
    path.write_text(json.dumps(results, indent=2) + "\n")
    (out / "retrieval.md").write_text(render(results))
    print(f"wrote {path} and {out / 'retrieval.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
