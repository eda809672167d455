"""The one module that joins the engine (rerank.aggregation) and the models (rerank.models).

The CLI and the gRPC server are thin faces over it: they parse and format, this module validates,
samples, calls the model, calibrates, aggregates and fuses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .aggregation import resolve_budget
from .aggregation.engine import RankingReport, aggregate
from .aggregation.registry import REGISTRY, lookup
from .aggregation.samplers import run_sampler
from .comparison_io import ComparisonGroup, ItemId


class Comparator(Protocol):
    """Anything that answers P(a more relevant than b | q) for a batch of (q, a, b); a PairwiseModel does."""

    def compare_batch(self, items: Sequence[tuple[str, str, str]]) -> Any: ...


class RequestError(ValueError):
    """Invalid request input; ``field`` names the offending field (e.g. ``options.budget``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Candidate:
    id: str
    text: str
    score: float | None = None  # first-stage score, informational: the candidates' order is the first stage


@dataclass(frozen=True)
class RankOptions:
    sampler: str = "all"
    budget: int | float | None = None  # comparisons, or a fraction of k(k-1); None = the sampler's all
    aggregator: str = "bt"
    calibration: str = "symmetric"
    fusion: str = "rrf"
    seed: int = 0
    time_budget_ms: float | None = None
    both_orders: bool | None = None
    prior_weight: float = 0.0


@dataclass(frozen=True)
class RankedItem:
    id: str
    index: int  # position in the request
    score: float
    stderr: float | None = None


@dataclass
class Usage:
    comparisons: int = 0
    batches: int = 0
    order_inconsistency: float = 0.0
    transitive_inconsistency: float = 0.0
    elapsed_ms: float = 0.0
    partial: bool = False  # the time budget ran out: the ranking uses the comparisons made so far
    stopped_early: bool = False
    budget: int = 0


@dataclass
class RerankResult:
    results: list[RankedItem]
    usage: Usage
    per_model: list[RankingReport] = field(default_factory=list)


def validate_options(options: RankOptions, n_items: int) -> int:
    """Check every option against the registry; return the budget in comparisons."""
    for kind, name, value in (
        ("sampler", "options.sampler", options.sampler),
        ("aggregator", "options.aggregator", options.aggregator),
        ("calibration", "options.calibration", options.calibration),
        ("fusion", "options.fusion", options.fusion),
    ):
        if value not in REGISTRY[kind]:
            known = ", ".join(sorted(REGISTRY[kind]))
            raise RequestError(name, f"unknown {kind} {value!r}; known: {known}")
    try:
        budget = resolve_budget(n_items, options.budget)
    except ValueError as exc:
        raise RequestError("options.budget", str(exc)) from None
    if options.time_budget_ms is not None and not (options.time_budget_ms > 0):
        raise RequestError("options.time_budget_ms", f"must be > 0, got {options.time_budget_ms}")
    if options.prior_weight < 0 or not np.isfinite(options.prior_weight):
        raise RequestError("options.prior_weight", f"must be >= 0, got {options.prior_weight}")
    return budget


def validate_candidates(
    query: str, candidates: Sequence[Candidate], max_candidates: int | None = None
) -> None:
    if not query or not query.strip():
        raise RequestError("query", "must not be empty")
    if not candidates:
        raise RequestError("candidates", "must not be empty")
    if max_candidates is not None and len(candidates) > max_candidates:
        raise RequestError("candidates", f"{len(candidates)} candidates exceed the limit of {max_candidates}")
    seen: set[str] = set()
    for i, c in enumerate(candidates):
        if not c.id:
            raise RequestError(f"candidates[{i}].id", "must not be empty")
        if c.id in seen:
            raise RequestError(f"candidates[{i}].id", f"duplicate id {c.id!r}")
        seen.add(c.id)
        if not c.text or not c.text.strip():
            raise RequestError(f"candidates[{i}].text", "must not be empty")


def rerank(
    query: str,
    candidates: Sequence[Candidate],
    models: Sequence[Comparator],
    options: RankOptions = RankOptions(),
    *,
    top_n: int | None = None,
    deadline: float | None = None,
) -> RerankResult:
    """Re-rank ``candidates`` (first-stage order) for ``query`` with one or more pairwise models.

    Each model: sampler -> model (one batch per round) -> calibration -> aggregator. Several models are
    fused with ``options.fusion``. ``options.time_budget_ms`` (or an absolute ``deadline`` on
    ``time.monotonic``) makes it anytime: sampling stops between rounds and the ranking uses what was
    seen, with ``usage.partial`` set. Raises :class:`RequestError` naming the bad field.
    """
    started = time.monotonic()
    validate_candidates(query, candidates)
    if not models:
        raise RequestError("model", "no model to compare with")
    if top_n is not None and top_n < 0:
        raise RequestError("top_n", f"must be >= 0, got {top_n}")
    n = len(candidates)
    budget = min(validate_options(options, n), n * (n - 1))  # no sampler can use more than all ordered pairs
    if options.time_budget_ms is not None:
        limit = started + options.time_budget_ms / 1000.0
        deadline = limit if deadline is None else min(deadline, limit)
    texts = [c.text for c in candidates]
    usage = Usage(budget=budget)
    reports: list[RankingReport] = []
    sampler = lookup("sampler", options.sampler)
    for model in models:

        def compare(pairs: list[tuple[int, int]], model: Comparator = model) -> np.ndarray:
            return np.asarray(model.compare_batch([(query, texts[a], texts[b]) for a, b in pairs]),
                              dtype=np.float64)

        outcome = run_sampler(sampler, n, budget, compare, seed=options.seed, both_orders=options.both_orders,
                              top_n=top_n if top_n else 10, deadline=deadline)
        report = aggregate(outcome.comparisons, method=options.aggregator, calibration=options.calibration,
                           seed=options.seed, prior_weight=options.prior_weight)
        reports.append(report)
        usage.comparisons += outcome.used
        usage.batches += outcome.rounds
        usage.partial = usage.partial or outcome.timed_out
        usage.stopped_early = usage.stopped_early or outcome.stopped_early
    usage.order_inconsistency = float(np.mean([r.diagnostics.order_inconsistency for r in reports]))
    usage.transitive_inconsistency = float(np.mean([r.diagnostics.transitive_inconsistency for r in reports]))
    if len(reports) == 1:
        order, scores, stderr = reports[0].order, reports[0].scores, reports[0].stderr
    else:
        fused = lookup("fusion", options.fusion)([r.order for r in reports], n)
        order, scores, stderr = fused.ranking(), np.asarray(fused.scores, dtype=np.float64), None
    keep = order if top_n is None or top_n == 0 else order[:top_n]
    results = [
        RankedItem(candidates[i].id, int(i), float(scores[i]), None if stderr is None else float(stderr[i]))
        for i in keep
    ]
    usage.elapsed_ms = (time.monotonic() - started) * 1000.0
    return RerankResult(results=results, usage=usage, per_model=reports)


def ranking_record(report: RankingReport, ids: list[ItemId]) -> dict[str, Any]:
    """A ranking as a JSON-ready dict: ids, scores, ranks (and stderr where the aggregator gives it)."""
    ranking = []
    for rank, index in enumerate(report.order, start=1):
        entry: dict[str, Any] = {"id": ids[index], "score": float(report.scores[index]), "rank": rank}
        if report.stderr is not None:
            entry["stderr"] = float(report.stderr[index])
        ranking.append(entry)
    d = report.diagnostics
    return {
        "ranking": ranking,
        "comparisons": report.comparisons,
        "order_inconsistency": d.order_inconsistency,
        "both_order_pairs": d.both_order_pairs,
        "transitive_inconsistency": d.transitive_inconsistency,
        "slot_bias": d.slot_bias,
        "method": report.method,
        "calibration": report.calibration,
    }


def aggregate_group(group: ComparisonGroup, method: str, calibration: str, **options: Any) -> dict[str, Any]:
    """Rank one group of comparisons and return its output record."""
    report = aggregate(group.comparisons(), method=method, calibration=calibration, **options)
    return {"group": group.group, **ranking_record(report, group.ids)}


@dataclass(frozen=True)
class TrecData:
    """What an oracle needs to answer from judgements: qrels, query texts and passage texts."""

    qrels: dict[str, dict[str, int]]
    queries: dict[str, str]
    corpus: dict[str, str]


def parse_model_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``name`` or ``name:key=value,key=value`` (e.g. ``oracle:noise=1,bias=0.5``)."""
    name, _, rest = spec.partition(":")
    if not name:
        raise RequestError("model", f"empty model name in {spec!r}")
    options: dict[str, str] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise RequestError("model", f"bad option {part!r} in {spec!r}; expected key=value")
        options[key.strip()] = value.strip()
    return name, options


def load_comparator(
    spec: str, *, trec: TrecData | None = None, store: Any = None, max_batch_size: int | None = None
) -> Comparator:
    """A comparator by spec: ``oracle[:noise=..,bias=..,scale=..,seed=..]`` (needs ``trec``), or an
    embedded model name (exported into the store on first use), a store name or a model folder, with
    optional ``backend=onnx|torch``, ``variant=fp32|int8``, ``dtype=fp32|bf16`` (``minilm:variant=int8``)."""
    name, options = parse_model_spec(spec)
    if name == "oracle":
        from .models.oracle import oracle_from_qrels

        if trec is None:
            raise RequestError("model", "the oracle needs relevance judgements (TREC mode or a dataset)")
        try:
            values = {k: float(v) for k, v in options.items()}
        except ValueError:
            raise RequestError("model", f"oracle options must be numbers: {spec!r}") from None
        unknown = set(values) - {"noise", "bias", "scale", "seed"}
        if unknown:
            known = "noise, bias, scale, seed"
            raise RequestError("model", f"unknown oracle option(s) {sorted(unknown)}; known: {known}")
        if "seed" in values:
            values["seed"] = int(values["seed"])
        return oracle_from_qrels(trec.qrels, trec.queries, trec.corpus, **values)
    from .models import EMBEDDED, ModelError, ModelStore, ensure_embedded, load_model

    unknown = set(options) - {"backend", "variant", "dtype"}
    if unknown:
        known = "backend, variant, dtype"
        raise RequestError("model", f"unknown model option(s) {sorted(unknown)}; known: {known}")
    try:
        model_store = store if store is not None else ModelStore()
        if name in EMBEDDED:
            ensure_embedded(name, store=model_store)
        return load_model(name, store=model_store, max_batch_size=max_batch_size, **options)
    except ModelError as exc:
        raise RequestError("model", str(exc)) from None
