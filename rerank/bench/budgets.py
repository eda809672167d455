"""``rerank bench budgets``: effectiveness against the number of comparisons, replayed from cached preferences.

Each query's model preferences are computed once (all ordered pairs of the top K, i.e. both orders) and
cached on disk; every sampler x calibration x aggregator x budget x repeat is then replayed from the cache
without the model, so a rerun with a warm cache takes seconds.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..aggregation import Comparisons, resolve_budget
from ..aggregation.calibration import diagnose
from ..aggregation.registry import lookup
from ..aggregation.samplers import run_sampler
from ..evaluation import ndcg_at_k, rank_docs, read_corpus, read_qrels, read_queries, read_run
from ..offline import qid_key
from ..pipeline import Candidate, Comparator, RankOptions, RequestError, rerank
from ..progress import Progress
from ..specs import TrecData, load_comparator

SORTING = ("heapsort", "quicksort", "sliding", "refine")
#: The grid row of the request defaults (``RankOptions()``: the ``auto`` sampler, its calibration and
#: aggregator, the first-stage prior), replayed through :func:`rerank.pipeline.rerank` like a request.
DEFAULTS = "defaults"


@dataclass(frozen=True)
class Dataset:
    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus: dict[str, str]
    run: dict[str, dict[str, float]]

    @property
    def judged_qids(self) -> list[str]:
        return sorted((q for q in self.run if q in self.qrels and q in self.queries), key=qid_key)


def load_dataset(folder: Path) -> Dataset:
    """A folder in the shared layout: corpus.jsonl, queries.tsv, qrels.txt and one run.*.trec."""
    if not folder.is_dir():
        raise ValueError(f"--dataset {folder} is not a folder")
    runs = sorted(folder.glob("run.*.trec"))
    if len(runs) != 1:
        raise ValueError(f"--dataset {folder} must hold exactly one run.*.trec file, found {len(runs)}")
    for name in ("corpus.jsonl", "queries.tsv", "qrels.txt"):
        if not (folder / name).is_file():
            raise ValueError(f"--dataset {folder} has no {name}")
    return Dataset(folder.name, read_queries(folder / "queries.tsv"), read_qrels(folder / "qrels.txt"),
                   read_corpus(folder / "corpus.jsonl"), read_run(runs[0]))


@dataclass(frozen=True)
class QueryPrefs:
    """The top-K documents of one query (first-stage order), the rest of the run, and P[a, b] for a != b."""

    qid: str
    docids: list[str]
    rest: list[str]
    P: np.ndarray


def _slug(text: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return f"{safe[:40]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def query_cache_file(folder: Path, qid: str) -> Path:
    """The cache file of one query's preferences in a ``<dataset>/<model>/depth<K>`` cache folder."""
    return folder / f"{_slug(qid)}.npz"


@dataclass(frozen=True)
class PreferenceJob:
    """One query whose preferences to compute: its text and its top-K texts (first-stage order)."""

    qid: str
    query: str
    texts: tuple[str, ...]


def all_pair_preferences(model: Comparator, job: PreferenceJob) -> np.ndarray:
    """P[a, b] = the model's P(a preferred to b) for every ordered pair a != b (NaN on the diagonal)."""
    n = len(job.texts)
    a, b = np.nonzero(~np.eye(n, dtype=bool))
    p = model.compare_batch([(job.query, job.texts[i], job.texts[j]) for i, j in zip(a, b, strict=True)])
    P = np.full((n, n), np.nan)
    P[a, b] = np.asarray(p, dtype=np.float64)
    return P


MapPrefs = Callable[[Iterable[PreferenceJob]], Iterator[tuple[PreferenceJob, np.ndarray]]]


@dataclass(frozen=True)
class PreferenceScorer:
    """The per-worker state of ``rerank bench budgets --engine ray`` (:func:`rerank.distributed.ray_mapper`
    with method ``"preferences"``): the model's P over all ordered pairs of one query's top K."""

    spec: str
    dataset: str  # the folder; the oracle reads its judgements

    def __call__(self) -> _LoadedScorer:
        trec = None
        if self.spec.startswith("oracle"):
            data = load_dataset(Path(self.dataset))
            trec = TrecData(data.qrels, data.queries, data.corpus)
        return _LoadedScorer(load_comparator(self.spec, trec=trec))


class _LoadedScorer:
    def __init__(self, model: Comparator) -> None:
        self.model = model

    def preferences(self, job: PreferenceJob) -> np.ndarray:
        return all_pair_preferences(self.model, job)


def cached_preferences(
    data: Dataset, model_spec: str, depth: int, cache_dir: Path, comparator: Callable[[], Comparator],
    qids: Sequence[str], map_prefs: MapPrefs | None = None, *, quiet: bool = False,
    progress_stream: IO[str] | None = None,
) -> list[QueryPrefs]:
    """All ordered pairs of each query's top ``depth``, from the cache or computed once (and cached); progress
    (queries cached/all, pairs/s) on ``progress_stream`` (stderr by default) unless ``quiet``.

    ``map_prefs`` (e.g. a pool of Ray actors, :mod:`rerank.distributed`) computes the missing queries in any
    order; by default this process computes them with ``comparator()`` (loaded on first need). Only this
    function writes the cache."""
    folder = cache_dir / _slug(data.name) / _slug(model_spec) / f"depth{depth}"
    folder.mkdir(parents=True, exist_ok=True)
    found: dict[str, QueryPrefs] = {}
    tops: dict[str, tuple[list[str], list[str]]] = {}
    for qid in qids:
        ranked = rank_docs(data.run[qid])
        top = [d for d in ranked[:depth] if data.corpus.get(d, "").strip()]
        rest = [d for d in ranked[:depth] if d not in set(top)] + ranked[depth:]
        tops[qid] = (top, rest)
        path = query_cache_file(folder, qid)
        if path.exists():
            saved = np.load(path, allow_pickle=False)
            if list(saved["docids"]) == top:
                found[qid] = QueryPrefs(qid, top, rest, saved["P"])
    missing = [PreferenceJob(q, data.queries[q], tuple(data.corpus[d] for d in tops[q][0]))
               for q in qids if q not in found]
    if map_prefs is None:
        load = functools.cache(comparator)
        map_prefs = lambda jobs: ((job, all_pair_preferences(load(), job)) for job in jobs)  # noqa: E731

    with Progress(len(qids), desc="preferences", unit="queries", initial=len(found), quiet=quiet or not missing,
                  stream=progress_stream) as progress:
        for job, P in map_prefs(missing):
            top, rest = tops[job.qid]
            path = query_cache_file(folder, job.qid)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, docids=np.array(top), P=P)
            os.replace(tmp, path)
            found[job.qid] = QueryPrefs(job.qid, top, rest, P)
            progress.update(1, pairs=len(top) * (len(top) - 1))
    return [found[q] for q in qids]


def _ci(values: np.ndarray) -> tuple[float, float, float]:
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean, mean
    half = 1.96 * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def replay(
    prefs: list[QueryPrefs], qrels: dict[str, dict[str, int]], *, samplers: Sequence[str],
    calibrations: Sequence[str], aggregators: Sequence[str], budgets: Sequence[float], repeats: int,
    quiet: bool = False, progress_stream: IO[str] | None = None,
) -> list[dict]:
    """nDCG@10 per configuration: mean over queries (of the mean over repeats) and a 95% interval; progress
    (sampler and budget pairs replayed) on ``progress_stream`` unless ``quiet``."""
    rows: list[dict] = []
    progress = Progress(len(samplers) * len(budgets), desc="replay", unit="budgets", quiet=quiet,
                        stream=progress_stream)
    for sampler_name in samplers:
        sampler = lookup("sampler", sampler_name)
        for fraction in budgets:
            scores: dict[tuple[str, str], np.ndarray] = {}
            used = np.zeros((len(prefs), repeats))
            for qi, q in enumerate(prefs):
                n = len(q.docids)
                budget = resolve_budget(n, fraction)

                def compare(pairs: list[tuple[int, int]], P: np.ndarray = q.P) -> np.ndarray:
                    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
                    return P[arr[:, 0], arr[:, 1]]

                for rep in range(repeats):
                    top_n = n if sampler_name in SORTING else 10
                    outcome = run_sampler(sampler, n, budget, compare, seed=rep, top_n=top_n)
                    used[qi, rep] = outcome.used
                    for cal in calibrations:
                        calibrated = lookup("calibration", cal)(outcome.comparisons)
                        for agg in aggregators:
                            order = lookup("aggregator", agg)(calibrated).ranking()
                            value = ndcg_at_k([q.docids[i] for i in order] + q.rest, qrels[q.qid], 10)
                            scores.setdefault((cal, agg), np.zeros((len(prefs), repeats)))[qi, rep] = value
                    if outcome.order is not None:
                        value = ndcg_at_k([q.docids[i] for i in outcome.order] + q.rest, qrels[q.qid], 10)
                        scores.setdefault(("-", "sampler-order"), np.zeros((len(prefs), repeats)))[qi, rep] = value
            for (cal, agg), values in scores.items():
                mean, lo, hi = _ci(values.mean(axis=1))
                rows.append({
                    "sampler": sampler_name, "calibration": cal, "aggregator": agg, "budget_fraction": fraction,
                    "comparisons_per_query": float(used.mean()), "ndcg10_mean": mean, "ndcg10_ci_low": lo,
                    "ndcg10_ci_high": hi, "queries": len(prefs), "repeats": repeats,
                })
            progress.update(1, comparisons=float(used.sum()))
    progress.close()
    return rows


class ReplayComparator:
    """A comparator answering from one query's cached preferences; candidate texts are their indices."""

    def __init__(self, P: np.ndarray) -> None:
        self.P = P

    def compare_batch(self, items: Sequence[tuple[str, str, str]]) -> np.ndarray:
        return np.array([self.P[int(a), int(b)] for _, a, b in items], dtype=np.float64)


def replay_defaults(
    prefs: list[QueryPrefs], qrels: dict[str, dict[str, int]], *, budgets: Sequence[int | float], repeats: int,
    **changes: object,
) -> list[dict]:
    """The ``defaults`` row of the grid: ``RankOptions(budget, seed, **changes)`` through the request path
    (sampler, calibration, aggregator and first-stage prior as a request runs them) at each budget, nDCG@10
    as :func:`replay` reports it (mean over queries of the mean over seeds 0..repeats-1, 95% interval)."""
    defaults = RankOptions()
    rows = []
    for budget in budgets:
        values = np.zeros((len(prefs), repeats))
        used = np.zeros((len(prefs), repeats))
        for qi, q in enumerate(prefs):
            candidates = [Candidate(d, str(i)) for i, d in enumerate(q.docids)]
            for rep in range(repeats):
                options = RankOptions(budget=budget, seed=rep, **changes)  # type: ignore[arg-type]
                out = rerank("q", candidates, [ReplayComparator(q.P)], options)
                values[qi, rep] = ndcg_at_k([r.id for r in out.results] + q.rest, qrels[q.qid], 10)
                used[qi, rep] = out.usage.comparisons
        mean, lo, hi = _ci(values.mean(axis=1))
        rows.append({
            "sampler": DEFAULTS, "calibration": defaults.calibration,
            "aggregator": f"{defaults.aggregator}+prior{defaults.prior():g}", "budget_fraction": budget,
            "comparisons_per_query": float(used.mean()), "ndcg10_mean": mean, "ndcg10_ci_low": lo,
            "ndcg10_ci_high": hi, "queries": len(prefs), "repeats": repeats,
        })
    return rows


def model_consistency(prefs: list[QueryPrefs]) -> dict[str, float]:
    """Order- and transitive-inconsistency of the model over all cached pairs (means over queries)."""
    order, trans = [], []
    for q in prefs:
        n = len(q.docids)
        a, b = np.nonzero(~np.eye(n, dtype=bool))
        d = diagnose(Comparisons(n, a, b, q.P[a, b]))
        order.append(d.order_inconsistency)
        trans.append(d.transitive_inconsistency)
    return {"order_inconsistency": float(np.mean(order)), "transitive_inconsistency": float(np.mean(trans))}


def first_stage_level(prefs: list[QueryPrefs], qrels: dict[str, dict[str, int]]) -> float:
    return float(np.mean([ndcg_at_k(q.docids + q.rest, qrels[q.qid], 10) for q in prefs]))


def write_outputs(out: Path, rows: list[dict], meta: dict) -> dict:
    """results.csv, summary.md and the plot; returns the summary figures."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    all_rows = [r for r in rows if r["sampler"] == "all" and r["budget_fraction"] == 1.0]
    all_pairs = max(all_rows, key=lambda r: r["ndcg10_mean"]) if all_rows else None
    first = meta["first_stage_ndcg10"]
    lines = [
        f"# Comparison budgets: {meta['model']} on {meta['dataset']}, depth {meta['depth']}", "",
        f"Command: `{meta['command']}`", "",
        f"{meta['queries']} judged queries, {meta['repeats']} repeats; nDCG@10 of the re-ranked top {meta['depth']} "
        "followed by the rest of the first-stage run; interval = mean over queries +- 1.96 standard errors of the "
        "per-query means (over repeats).", "",
        f"- First stage nDCG@10: {first:.4f}",
    ]
    summary: dict = {"first_stage": first, "consistency": meta["consistency"]}
    if all_pairs:
        lines.append(f"- All pairs (both orders), best calibration + aggregator ({all_pairs['calibration']} + "
                     f"{all_pairs['aggregator']}): {all_pairs['ndcg10_mean']:.4f}")
        summary["all_pairs"] = all_pairs
    lines += [f"- Model order inconsistency {meta['consistency']['order_inconsistency']:.3f}, transitive "
              f"inconsistency {meta['consistency']['transitive_inconsistency']:.4f} (all pairs of the top "
              f"{meta['depth']}, mean over queries)", ""]
    lines += ["## Best combination per budget", "",
              "| budget | comparisons/query | sampler | calibration | aggregator | nDCG@10 | 95% interval "
              "| of all pairs |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    summary["best"] = {}
    for fraction in sorted({r["budget_fraction"] for r in rows}):
        best = max((r for r in rows if r["budget_fraction"] == fraction), key=lambda r: r["ndcg10_mean"])
        share = best["ndcg10_mean"] / all_pairs["ndcg10_mean"] if all_pairs else None
        summary["best"][str(fraction)] = {**best, "share_of_all_pairs": share}
        lines.append(f"| {fraction:.0%} | {best['comparisons_per_query']:.0f} | {best['sampler']} | "
                     f"{best['calibration']} | {best['aggregator']} | {best['ndcg10_mean']:.4f} | "
                     f"{best['ndcg10_ci_low']:.4f}-{best['ndcg10_ci_high']:.4f} | {percent(share)} |")
    summary["defaults"] = defaults_against_grid(rows)
    if summary["defaults"]:
        lines += ["", f"## The defaults ({DEFAULTS} row: `RankOptions()` through the request path) against the best "
                  "other row", "",
                  "| budget | comparisons/query | defaults | grid best | grid best configuration "
                  "| defaults / grid best |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for fraction, d in summary["defaults"].items():
            lines.append(f"| {float(fraction):.0%} | {d['comparisons_per_query']:.0f} | {d['ndcg10_mean']:.4f} | "
                         f"{d['grid_best']:.4f} | {d['grid_best_config']} | {percent(d['share_of_grid_best'])} |")
    if all_pairs:
        beats = all_pairs["ndcg10_mean"] > first
        lines += ["", f"All pairs {'beats' if beats else 'does not beat'} the first stage."]
        for fraction, goal in ((0.1, 0.97), (0.33, 0.99)):
            got = summary["best"].get(str(fraction))
            if got and beats:
                ok = got["share_of_all_pairs"] >= goal
                lines.append(f"Goal at {fraction:.0%}: {goal:.0%} of all pairs -> {got['share_of_all_pairs']:.1%} "
                             f"({'met' if ok else 'NOT met'}).")
    lines += ["", "## Every sampler at every budget (best calibration + aggregator for that sampler)", "",
              "| sampler | budget | comparisons/query | calibration | aggregator | nDCG@10 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for sampler in dict.fromkeys(r["sampler"] for r in rows):
        for fraction in sorted({r["budget_fraction"] for r in rows}):
            cands = [r for r in rows if r["sampler"] == sampler and r["budget_fraction"] == fraction]
            if cands:
                b = max(cands, key=lambda r: r["ndcg10_mean"])
                lines.append(f"| {sampler} | {fraction:.0%} | {b['comparisons_per_query']:.0f} | {b['calibration']} | "
                             f"{b['aggregator']} | {b['ndcg10_mean']:.4f} |")
    lines += ["", "![nDCG@10 against comparisons](ndcg_vs_comparisons.png)", ""]
    (out / "summary.md").write_text("\n".join(lines))
    (out / "summary.json").write_text(json.dumps({**meta, **summary}, indent=2, default=str))
    plot(out / "ndcg_vs_comparisons.png", rows, first, all_pairs, meta)
    return summary


def percent(share: float | None) -> str:
    """A share as a percentage, ``-`` where there is nothing to compare with."""
    return "-" if share is None else f"{share:.1%}"


def defaults_against_grid(rows: list[dict]) -> dict[str, dict]:
    """Per budget with a :data:`DEFAULTS` row: that row, the best other row and the defaults' share of it."""
    out: dict[str, dict] = {}
    for d in (r for r in rows if r["sampler"] == DEFAULTS):
        others = [r for r in rows if r["sampler"] != DEFAULTS and r["budget_fraction"] == d["budget_fraction"]]
        if not others:
            continue
        best = max(others, key=lambda r: r["ndcg10_mean"])
        out[str(d["budget_fraction"])] = {
            **d, "grid_best": best["ndcg10_mean"], "share_of_grid_best": d["ndcg10_mean"] / best["ndcg10_mean"],
            "grid_best_config": f"{best['sampler']}+{best['calibration']}+{best['aggregator']}"}
    return out


def plot(path: Path, rows: list[dict], first: float, all_pairs: dict | None, meta: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for sampler in dict.fromkeys(r["sampler"] for r in rows):
        pts = []
        for fraction in sorted({r["budget_fraction"] for r in rows}):
            cands = [r for r in rows if r["sampler"] == sampler and r["budget_fraction"] == fraction]
            if cands:
                b = max(cands, key=lambda r: r["ndcg10_mean"])
                pts.append((b["comparisons_per_query"], b["ndcg10_mean"]))
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=sampler)
    ax.axhline(first, color="gray", linestyle="--", label=f"first stage ({first:.3f})")
    if all_pairs:
        ax.axhline(all_pairs["ndcg10_mean"], color="black", linestyle=":",
                   label=f"all pairs ({all_pairs['ndcg10_mean']:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("comparisons per query (model calls, log scale)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"{meta['model']} on {meta['dataset']}, top {meta['depth']} "
                 f"({meta['queries']} queries; best calibration + aggregator per point)")
    ax.title.set_fontsize(9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_budget_bench(
    dataset_dir: Path, model_spec: str, depth: int, samplers: Sequence[str], aggregators: Sequence[str],
    calibrations: Sequence[str], budgets: Sequence[float], repeats: int, out: Path, cache_dir: Path,
    max_queries: int | None, command: str, map_prefs: MapPrefs | None = None, *, quiet: bool = False,
    progress_stream: IO[str] | None = None, defaults: bool = True,
) -> dict:
    """The whole benchmark: preferences (cached), their replay (with the :data:`DEFAULTS` row unless
    ``defaults`` is false), the result files; progress on ``progress_stream`` (stderr by default) unless
    ``quiet``."""
    for kind, values in (("sampler", samplers), ("aggregator", aggregators), ("calibration", calibrations)):
        for v in values:
            lookup(kind, v)
    for b in budgets:
        if not 0 < b <= 1:
            raise RequestError("budgets", f"budgets are fractions in (0, 1], got {b}")
    if depth < 2 or repeats < 1:
        raise RequestError("depth", "depth must be >= 2 and repeats >= 1")
    data = load_dataset(dataset_dir)
    qids = data.judged_qids[:max_queries] if max_queries else data.judged_qids
    trec = TrecData(data.qrels, data.queries, data.corpus)
    started = time.monotonic()
    prefs = cached_preferences(data, model_spec, depth, cache_dir, lambda: load_comparator(model_spec, trec=trec),
                               qids, map_prefs, quiet=quiet, progress_stream=progress_stream)
    prefs_s = time.monotonic() - started
    rows = replay(prefs, data.qrels, samplers=samplers, calibrations=calibrations, aggregators=aggregators,
                  budgets=budgets, repeats=repeats, quiet=quiet, progress_stream=progress_stream)
    if defaults:
        rows += replay_defaults(prefs, data.qrels, budgets=budgets, repeats=repeats)
    meta = {"model": model_spec, "dataset": data.name, "depth": depth, "queries": len(prefs), "repeats": repeats,
            "command": command, "first_stage_ndcg10": first_stage_level(prefs, data.qrels),
            "consistency": model_consistency(prefs), "preferences_seconds": prefs_s,
            "replay_seconds": time.monotonic() - started - prefs_s}
    return write_outputs(out, rows, meta)
