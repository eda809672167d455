"""The one module that joins the engine (rerank.aggregation) and the models (rerank.models).

The CLI and the gRPC server are thin faces over it: they parse and format, this module validates,
samples, calls the model, calibrates, aggregates and fuses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from .aggregation import check_budget, resolve_budget
from .aggregation.engine import RankingReport, aggregate
from .aggregation.registry import (
    DEFAULT_AGGREGATOR,
    DEFAULT_CALIBRATION,
    DEFAULT_SAMPLER,
    REGISTRY,
    calibration_conflict,
    default_prior_weight,
    lookup,
)
from .aggregation.samplers import PARAMETER_KEYWORDS, SAMPLER_PARAMETERS, run_sampler
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


#: The defaults are the best configuration measured (docs/benchmarks.md, "Defaults"): ``auto`` asks all pairs
#: when the budget pays for them and runs the ``active`` sampler otherwise; symmetric calibration and
#: HodgeRank were the best calibration and aggregator for both at every budget on DL19 (MiniLM and the
#: noisy oracle); the first-stage prior (weight 1 at k comparisons, :func:`prior_weight_for`) keeps a ranking
#: from few comparisons at the first stage.
#: (The constants live in the registry, so the CLI can show them without importing the pipeline.)
#: The prior's weight grows as comparisons get fewer, up to this many times ``prior_weight``.
PRIOR_CAP = 2.0


def prior_weight_for(weight: float, n_items: int, comparisons: int) -> float:
    """The weight of each first-stage pseudo-comparison for a ranking made from ``comparisons`` model calls:
    ``weight * k / comparisons``, at most ``PRIOR_CAP * weight``.

    The first stage counts as about k comparisons' worth of evidence however many were made: with few
    comparisons it holds the order (one answer moves an item a few places, not to the top), with many it
    gives way (at 5% of k(k-1) = 2.5 k its rows weigh 0.4, at 33% 0.06). Measured on DL19 (docs/benchmarks.md,
    "Defaults"): a fixed weight either let one late winner reach rank 1 (0.25) or cost nDCG@10 at 5% (1.0).
    """
    if weight == 0 or n_items < 2:
        return 0.0
    return weight * min(PRIOR_CAP, n_items / max(comparisons, 1))


@dataclass(frozen=True)
class RankOptions:
    sampler: str = DEFAULT_SAMPLER
    budget: int | float | None = None  # comparisons, or a fraction of k(k-1); None = the sampler's all
    aggregator: str = DEFAULT_AGGREGATOR
    calibration: str = DEFAULT_CALIBRATION
    fusion: str = "rrf"
    seed: int = 0
    time_budget_ms: float | None = None
    both_orders: bool | None = None
    # first-stage prior at k comparisons (see prior_weight_for); None: default_prior_weight(aggregator), i.e.
    # DEFAULT_PRIOR_WEIGHT, and none for a reference aggregation (duoBERT Sum, Sym-Sum, PRP all-pair)
    prior_weight: float | None = None

    def prior(self) -> float:
        """The prior weight asked for, else the aggregator's default."""
        return default_prior_weight(self.aggregator) if self.prior_weight is None else float(self.prior_weight)
    # sampler parameters (SAMPLER_PARAMETERS says which sampler takes which); None = the sampler's own
    window: int | None = None  # window size m of window and skip
    skip: int | None = None  # dilation of skip
    sampler_top_n: int | None = None  # positions heapsort/quicksort/sliding/active settle (default: top_n, else 10)
    rounds: int | None = None  # at most this many sampling rounds (model batches), any sampler

    def sampler_keywords(self) -> dict[str, int]:
        """The sampler parameters set, under the sampler function's keywords (``window`` -> ``m``)."""
        given = {"window": self.window, "skip": self.skip, "top_n": self.sampler_top_n}
        return {PARAMETER_KEYWORDS[k]: int(v) for k, v in given.items() if v is not None}


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
    # per-request model stats (summed over models and stages; zero for comparators that do not report them)
    truncated_items: int = 0  # comparisons whose p depends on a text cut to its token budget
    tokenize_ms: float = 0.0
    queue_ms: float = 0.0  # waiting for the server's batch scheduler
    run_ms: float = 0.0  # backend run and postprocess

    def add_call(self, result: Any) -> None:
        """Add a ``compare_batch`` result's stats (a model's ``CompareResult`` or the server's answer)."""
        stats = getattr(result, "stats", None)
        if stats is None:
            return
        self.tokenize_ms += float(getattr(stats, "tokenize_s", 0.0)) * 1000.0
        self.run_ms += (float(getattr(stats, "run_s", 0.0)) + float(getattr(stats, "postprocess_s", 0.0))) * 1000.0
        self.queue_ms += float(getattr(stats, "queue_s", 0.0)) * 1000.0
        cut = getattr(result, "truncated", None)
        self.truncated_items += int(np.count_nonzero(cut)) if cut is not None else int(
            getattr(stats, "truncated_items", 0)
        )


@dataclass
class StageUsage:
    """What one cascade stage did: the candidates it re-ranked (``depth``) and its model calls
    (``comparisons``: pairwise comparisons, or candidates scored by a pointwise stage)."""

    model: str
    depth: int
    comparisons: int
    pointwise: bool
    elapsed_ms: float


@dataclass
class RerankResult:
    results: list[RankedItem]
    usage: Usage
    per_model: list[RankingReport] = field(default_factory=list)
    stages: list[StageUsage] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """One cascade stage: ``model`` re-ranks the top ``depth`` of the previous stage's order."""

    model: Comparator
    depth: int
    name: str = ""


def _check_sampler_parameters(options: RankOptions) -> None:
    takes = SAMPLER_PARAMETERS.get(options.sampler, frozenset())
    for name, field_name, value in (("window", "options.window", options.window),
                                    ("skip", "options.skip", options.skip),
                                    ("top_n", "options.sampler_top_n", options.sampler_top_n),
                                    ("rounds", "options.rounds", options.rounds)):
        if value is None:
            continue
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise RequestError(field_name, f"must be a whole number >= 1, got {value!r}")
        if name != "rounds" and name not in takes:
            users = ", ".join(s for s, params in SAMPLER_PARAMETERS.items() if name in params)
            raise RequestError(field_name, f"sampler {options.sampler!r} does not take it; used by: {users}")


def validate_options(options: RankOptions, n_items: int | None, *, budget_field: str = "options.budget") -> int:
    """Check every option against the registry; return the budget in comparisons.

    The one budget rule for every face (Python, CLI, gRPC): a budget that resolves to fewer comparisons than
    ``n_items`` candidates need (:func:`~rerank.aggregation.minimum_budget`) is an error naming
    ``budget_field``, k and the minimum. ``n_items=None`` checks only what does not depend on k (returns 0).
    """
    for kind, name, value in (
        ("sampler", "options.sampler", options.sampler),
        ("aggregator", "options.aggregator", options.aggregator),
        ("calibration", "options.calibration", options.calibration),
        ("fusion", "options.fusion", options.fusion),
    ):
        if value not in REGISTRY[kind]:
            known = ", ".join(sorted(REGISTRY[kind]))
            raise RequestError(name, f"unknown {kind} {value!r}; known: {known}")
    conflict = calibration_conflict(options.aggregator, options.calibration)
    if conflict:
        raise RequestError("options.calibration", conflict)
    _check_sampler_parameters(options)
    try:
        budget = resolve_budget(2, options.budget) if n_items is None else check_budget(n_items, options.budget)
    except ValueError as exc:
        raise RequestError(budget_field, str(exc)) from None
    if options.time_budget_ms is not None and not (options.time_budget_ms > 0):
        raise RequestError("options.time_budget_ms", f"must be > 0, got {options.time_budget_ms}")
    if options.prior() < 0 or not np.isfinite(options.prior()):
        raise RequestError("options.prior_weight", f"must be >= 0, got {options.prior_weight}")
    return 0 if n_items is None else budget


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
            result = model.compare_batch([(query, texts[a], texts[b]) for a, b in pairs])
            usage.add_call(result)
            return np.asarray(getattr(result, "p", result), dtype=np.float64)

        keywords = {"top_n": top_n if top_n else 10, **options.sampler_keywords()}
        outcome = run_sampler(sampler, n, budget, compare, seed=options.seed, both_orders=options.both_orders,
                              deadline=deadline, max_rounds=options.rounds, **keywords)
        report = aggregate(outcome.comparisons, method=options.aggregator, calibration=options.calibration,
                           seed=options.seed, prior_weight=prior_weight_for(options.prior(), n, outcome.used))
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


def rerank_cascade(
    query: str,
    candidates: Sequence[Candidate],
    stages: Sequence[Stage],
    options: RankOptions = RankOptions(),
    *,
    top_n: int | None = None,
    deadline: float | None = None,
) -> RerankResult:
    """Multi-stage re-ranking as duoT5 is used in its papers (mono on the top k1, pairwise on the top k2 of
    that): stage i re-ranks the top ``depth_i`` of stage i-1's order, the rest keeps its place.

    A stage before the last whose model is pointwise (``model.pointwise``: bi-encoder, mono kinds) ranks by
    its per-passage scores, one model call per candidate; any other earlier stage compares all pairs with
    the request's aggregator and calibration. The last stage runs the request's options (sampler, budget,
    time budget, calibration, aggregator). Scores are rank-based (n - position), since stages score on
    different scales. ``usage`` sums the stages' model calls; its diagnostics and budget are the last
    stage's; ``stages`` reports each stage.
    """
    started = time.monotonic()
    validate_candidates(query, candidates)
    if not stages:
        raise RequestError("options.stages", "no stage given")
    for i, stage in enumerate(stages):
        if stage.depth < 1:
            raise RequestError(f"options.stages[{i}].depth", f"must be >= 1, got {stage.depth}")
    if top_n is not None and top_n < 0:
        raise RequestError("top_n", f"must be >= 0, got {top_n}")
    validate_options(options, len(candidates))
    order = list(range(len(candidates)))
    usage = Usage()
    report: list[StageUsage] = []
    per_model: list[RankingReport] = []
    for i, stage in enumerate(stages):
        t0 = time.monotonic()
        top = order[: min(stage.depth, len(order))]
        last = i == len(stages) - 1
        pointwise = not last and bool(getattr(stage.model, "pointwise", False))
        if pointwise:
            scores = np.asarray(stage.model.score(query, [candidates[j].text for j in top]), dtype=np.float64)  # type: ignore[attr-defined]
            top = [top[j] for j in np.argsort(-scores, kind="stable")]
            calls = len(top)
        else:
            opts = options if last else replace(options, sampler="all", budget=None, time_budget_ms=None)
            sub = rerank(query, [candidates[j] for j in top], [stage.model], opts, deadline=deadline)
            top = [top[r.index] for r in sub.results]
            calls = sub.usage.comparisons
            for name in ("truncated_items", "tokenize_ms", "queue_ms", "run_ms"):
                setattr(usage, name, getattr(usage, name) + getattr(sub.usage, name))
            usage.batches += sub.usage.batches
            usage.partial = usage.partial or sub.usage.partial
            usage.stopped_early = usage.stopped_early or sub.usage.stopped_early
            if last:
                usage.order_inconsistency = sub.usage.order_inconsistency
                usage.transitive_inconsistency = sub.usage.transitive_inconsistency
                usage.budget = sub.usage.budget
            per_model.extend(sub.per_model)
        order = top + order[len(top):]
        usage.comparisons += calls
        report.append(StageUsage(stage.name, len(top), calls, pointwise, (time.monotonic() - t0) * 1000.0))
    n = len(order)
    keep = order if top_n is None or top_n == 0 else order[:top_n]
    results = [RankedItem(candidates[j].id, int(j), float(n - pos)) for pos, j in enumerate(keep)]
    usage.elapsed_ms = (time.monotonic() - started) * 1000.0
    return RerankResult(results=results, usage=usage, per_model=per_model, stages=report)


def parse_stage(text: str) -> tuple[str, int]:
    """``MODEL:DEPTH`` (the depth after the last colon: ``oracle:noise=3,bias=1:20``)."""
    spec, colon, depth = text.rpartition(":")
    if not colon or not spec:
        raise RequestError("stage", f"{text!r}: expected MODEL:DEPTH (e.g. minilm:100)")
    try:
        value = int(depth)
    except ValueError:
        raise RequestError("stage", f"{text!r}: the depth after the last ':' must be an integer") from None
    if value < 1:
        raise RequestError("stage", f"{text!r}: the depth must be >= 1")
    return spec, value


def stage_records(stages: Sequence[StageUsage]) -> list[dict[str, Any]]:
    return [asdict(s) for s in stages]


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
