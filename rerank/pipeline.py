"""The one module that joins the engine (rerank.aggregation) and the models (rerank.models).

The CLI and the gRPC server are thin faces over it: they parse and format, this module validates,
samples, calls the model, calibrates, aggregates and fuses.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from .aggregation.calibration import Diagnostics
from .aggregation.engine import RankingReport, aggregate
from .aggregation.escalation import EscalationThreshold, fixed_sequence_threshold, pair_confidence
from .aggregation.registry import lookup
from .aggregation.samplers import run_sampler
from .request import (
    Candidate,
    Checked,
    KwiseOptions,
    Limits,
    RankOptions,
    RequestError,
    RerankRequest,
    StageSpec,
    StageUsage,
    Usage,
    check_escalation_targets,
    validate,
    validate_candidates,
    validate_options,
)
from .scores import ABSOLUTE_SCALES, LOG_STRENGTH_AGGREGATORS, beat_typical, by_position, threshold_scores

__all__ = [
    "Candidate", "Comparator", "Escalation", "Limits", "RankOptions", "RankedItem", "RequestError", "RerankRequest",
    "RerankResult", "Stage", "StageSpec", "StageUsage", "Usage", "calibrate_escalation", "model_traits",
    "prior_weight_for", "rerank", "rerank_cascade", "rerank_setwise", "run", "setwise_models", "validate_candidates",
    "validate_options",
]


class Comparator(Protocol):
    """Anything that answers P(a more relevant than b | q) for a batch of (q, a, b); a PairwiseModel does."""

    def compare_batch(self, items: Sequence[tuple[str, str, str]]) -> Any: ...


#: The defaults are the best configuration measured (docs/benchmarks.md, "Defaults"): ``auto`` asks all pairs
#: when the budget pays for them and runs the ``active`` sampler otherwise; symmetric calibration and
#: HodgeRank were the best calibration and aggregator for both at every budget on DL19 (MiniLM and the
#: noisy oracle); the first-stage prior (weight 1 at k comparisons, :func:`prior_weight_for`) keeps a ranking
#: from few comparisons at the first stage.
#: (The constants live in the registry, so the CLI can show them without importing the pipeline.)
#: The prior's weight grows as comparisons get fewer, up to this many times ``prior_weight``.
PRIOR_CAP = 2.0
DEFAULT_OPTIONS = RankOptions()


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
class RankedItem:
    id: str
    index: int  # position in the request
    score: float
    stderr: float | None = None


@dataclass
class RerankResult:
    results: list[RankedItem]
    usage: Usage
    per_model: list[RankingReport] = field(default_factory=list)
    stages: list[StageUsage] = field(default_factory=list)
    scores: np.ndarray | None = None  # every candidate's score (by request position), fused once
    order: list[int] = field(default_factory=list)  # every candidate, best first (``results`` is its top_n)
    absolute: np.ndarray | None = None  # with request.absolute_scores: scores a threshold can use (rerank.scores)
    fusion_weights: list[float] | None = None  # per model, where the fusion weighs them (``peer``)


@dataclass(frozen=True)
class Escalation:
    """Selective escalation (Trust or Escalate; :mod:`rerank.aggregation.escalation`): ``cheap`` answers a pair
    where its confidence max(p, 1 - p) is at least ``threshold`` (from :func:`calibrate_escalation`; ``inf``:
    every pair escalates), the stage's model answers the others. ``record``, when given, receives
    ``(query, text a, text b, cheap p, strong p)`` of every escalated pair (calibration)."""

    cheap: Comparator
    threshold: float
    name: str = ""
    record: list[tuple[str, str, str, float, float]] | None = None


@dataclass(frozen=True)
class Stage:
    """One cascade stage of the Python API: ``model`` re-ranks the top ``depth`` of the previous stage (with
    ``escalation``: only the pairs the cheap judge is not confident about reach ``model``)."""

    model: Comparator
    depth: int
    name: str = ""
    escalation: Escalation | None = None


def _p_of(result: Any) -> np.ndarray:
    return np.asarray(getattr(result, "p", result), dtype=np.float64).reshape(-1)


class EscalatingComparator:
    """Asks the cheap judge every pair and ``strong`` only the pairs whose cheap confidence is below the
    threshold; counts both, and keeps both judges' model stats in ``usage``."""

    def __init__(self, escalation: Escalation, strong: Comparator) -> None:
        self.escalation, self.strong = escalation, strong
        self.asked = 0
        self.escalated = 0
        self.usage = Usage()

    def compare_batch(self, items: Sequence[tuple[str, str, str]]) -> np.ndarray:
        answer = self.escalation.cheap.compare_batch(items)
        self.usage.add_call(answer)
        p = _p_of(answer).copy()
        up = np.flatnonzero(pair_confidence(p) < self.escalation.threshold)
        if len(up):
            answer = self.strong.compare_batch([items[i] for i in up])
            self.usage.add_call(answer)
            strong = _p_of(answer)
            if self.escalation.record is not None:
                self.escalation.record.extend((*items[i], float(p[i]), float(x))
                                              for i, x in zip(up, strong, strict=True))
            p[up] = strong
        self.asked += len(items)
        self.escalated += len(up)
        return p


def calibrate_escalation(
    queries: Sequence[tuple[str, Sequence[Candidate]]], stages: Sequence[Stage], cheap: Comparator,
    options: RankOptions = DEFAULT_OPTIONS, *, alpha: float, delta: float,
    grades: Mapping[tuple[str, str], float] | None = None, unit: str = "query", new_queries: int | None = None,
) -> EscalationThreshold:
    """The threshold of selective escalation in the last of ``stages``, from calibration queries.

    Each calibration query runs through the plain cascade (every pair of the last stage goes to its model), and
    the pairs the last stage asks get the cheap judge's answer too, so the calibration pairs are drawn as the test
    pairs are. The reference is the strong judge's answer (agreement: both on the same side of 0.5), or with
    ``grades`` (``(query text, passage text) -> relevance grade``, unjudged = 0: human judgements, as in Trust or
    Escalate) the human preference, on the pairs whose grades differ (the others have none).
    :func:`~rerank.aggregation.escalation.fixed_sequence_threshold` picks the threshold for ``alpha``, ``delta``.
    ``unit="query"`` (default): each calibration query is one independent draw, and the guarantee is for queries
    outside the calibration set (``new_queries``: for the pooled agreement of the next N queries rather than of
    the query population); ``unit="pair"``: the binomial test over pairs, which holds only for pairs exchangeable
    with the calibration pairs (calibrating on pairs of the very queries to be ranked).
    """
    if unit not in ("query", "pair"):
        raise RequestError("escalation.unit", f"must be query or pair, got {unit!r}")
    check_escalation_targets(alpha, delta)
    if not stages:
        raise RequestError("options.stages", "no stage given")
    record: list[tuple[str, str, str, float, float]] = []
    last = replace(stages[-1], escalation=Escalation(cheap, float("inf"), record=record))
    of_query: list[int] = []  # the calibration query of each record (a repeated query text is another draw)
    for index, (query, candidates) in enumerate(queries):
        rerank_cascade(query, candidates, [*stages[:-1], last], options)
        of_query += [index] * (len(record) - len(of_query))
    p_cheap = np.array([r[3] for r in record])
    if grades is None:
        reference = np.array([r[4] for r in record]) >= 0.5
        labelled = np.ones(len(record), dtype=bool)
    else:
        gap = np.array([grades.get((q, a), 0.0) - grades.get((q, b), 0.0) for q, a, b, _, _ in record])
        reference, labelled = gap > 0, gap != 0
    if not labelled.any():
        raise RequestError("escalation", "no calibration pairs: the calibration queries gave no labelled pair")
    agrees = (p_cheap[labelled] >= 0.5) == reference[labelled]
    by_query = np.array(of_query)[labelled] if unit == "query" else None
    return fixed_sequence_threshold(pair_confidence(p_cheap[labelled]), agrees, alpha, delta, queries=by_query,
                                    new_queries=new_queries)


def run(
    request: RerankRequest,
    comparators: Mapping[str, Comparator],
    *,
    limits: Limits | None = None,
    deadline: float | None = None,
    checked: Checked | None = None,
    escalations: Sequence[Escalation | None] = (),
) -> RerankResult:
    """Run a :class:`RerankRequest` with the comparators by model name: validated by
    :func:`rerank.request.validate` (against ``limits``; default: the comparators given, the first is the
    default model), then one ranking (several models: concurrently, then fused with ``options.fusion``) or
    a cascade of ``request.stages`` (a stage's ``escalation_threshold`` routes its pairs through the stage
    before it first; ``escalations``, by stage, give the Python API's own cheap judges: :class:`Escalation`).
    ``deadline`` (``time.monotonic``) and
    ``options.time_budget_ms`` make it anytime: sampling stops between rounds and the ranking uses what was
    seen (``usage.partial``)."""
    started = time.monotonic()
    if checked is None:
        limits = limits or Limits(models=tuple(comparators), default_model=next(iter(comparators), ""),
                                  **model_traits(comparators))
        checked = validate(request, limits)
    options = request.options
    if options.time_budget_ms is not None:
        limit = started + options.time_budget_ms / 1000.0
        deadline = limit if deadline is None else min(deadline, limit)
    if request.stages:
        escalations = escalations or [  # a request's thresholds: the stage before is the cheap judge
            None if s.escalation_threshold is None else Escalation(
                comparators[request.stages[i - 1].model], s.escalation_threshold, request.stages[i - 1].model)
            for i, s in enumerate(request.stages)]
        out = _cascade(request, [comparators[m] for m in checked.models], deadline, escalations,
                       checked.kwise.get(checked.models[-1]))
    else:
        out = _rank(request.query, request.candidates, [comparators[m] for m in checked.models], options,
                    checked.budget, request.top_n or None, deadline, [checked.kwise.get(m) for m in checked.models])
    if request.absolute_scores:
        out.absolute = _absolute(request, [comparators[m] for m in dict.fromkeys(checked.models)], out,
                                 bool(checked.kwise))
    out.usage.elapsed_ms = (time.monotonic() - started) * 1000.0
    return out


def model_traits(comparators: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`Limits` fields the models themselves give: ``setwise`` (:func:`setwise_models`) and
    ``pointwise`` (the models that score each passage alone)."""
    return {"setwise": setwise_models(comparators),
            "pointwise": [name for name, model in comparators.items() if getattr(model, "pointwise", False)]}


def setwise_models(comparators: Mapping[str, Any]) -> dict[str, int]:
    """The setwise models among ``comparators`` (kind ``setwise``, or anything with ``compare_sets`` and no
    kind), each with its ``max_k``: the request validates their K-wise options (:func:`rerank.request.validate`)."""
    out = {}
    for name, model in comparators.items():
        kind = getattr(model, "kind", None)
        if kind == "setwise" or (kind is None and callable(getattr(model, "compare_sets", None))):
            spec = getattr(model, "spec", None)
            out[name] = int(getattr(spec, "options", {}).get("max_k") or getattr(model, "max_k", 0) or 10)
    return out


def _rank_one(
    query: str, texts: list[str], model: Comparator, options: RankOptions, budget: int, top_n: int | None,
    deadline: float | None, kwise: KwiseOptions | None = None,
) -> tuple[RankingReport, Usage]:
    """Sampler -> model (one batch per round) -> calibration -> aggregator, for one model (a setwise model:
    :func:`_rank_kwise`)."""
    if kwise is not None:
        return _rank_kwise(query, texts, model, kwise)
    n = len(texts)
    usage = Usage(budget=budget)

    def compare(pairs: list[tuple[int, int]]) -> np.ndarray:
        result = model.compare_batch([(query, texts[a], texts[b]) for a, b in pairs])
        usage.add_call(result)
        return np.asarray(getattr(result, "p", result), dtype=np.float64)

    keywords = {"top_n": top_n if top_n else 10, **options.sampler_keywords()}
    outcome = run_sampler(lookup("sampler", options.sampler), n, budget, compare, seed=options.seed,
                          both_orders=options.both_orders, deadline=deadline, max_rounds=options.rounds, **keywords)
    report = aggregate(outcome.comparisons, method=options.aggregator, calibration=options.calibration,
                       seed=options.seed, prior_weight=prior_weight_for(options.prior(), n, outcome.used))
    usage.comparisons = outcome.used
    usage.batches = outcome.rounds
    usage.partial = outcome.timed_out
    usage.stopped_early = outcome.stopped_early
    return report, usage


def _rank(
    query: str,
    candidates: Sequence[Candidate],
    models: Sequence[Comparator],
    options: RankOptions,
    budget: int,
    top_n: int | None,
    deadline: float | None,
    kwise: Sequence[KwiseOptions | None] = (),
) -> RerankResult:
    """Rank checked candidates with one or more models: several run concurrently (each on its own thread,
    so their schedulers batch at once), then are fused with ``options.fusion``, once. Equal texts are one
    item: ranked once, they get the same score and adjacent places (in request order). ``kwise`` (by model)
    gives a setwise model's K-wise options."""
    group, texts = _distinct(candidates)
    m = len(texts)
    budget = min(budget, m * (m - 1))
    sets = [*kwise, *[None] * (len(models) - len(kwise))]
    if len(models) == 1:
        ranked = [_rank_one(query, texts, models[0], options, budget, top_n, deadline, sets[0])]
    else:
        with ThreadPoolExecutor(len(models), thread_name_prefix="rerank-model") as pool:
            futures = [pool.submit(_rank_one, query, texts, model, options, budget, top_n, deadline, kw)
                       for model, kw in zip(models, sets, strict=True)]
            ranked = [f.result() for f in futures]
    reports = [r for r, _ in ranked]
    usage = Usage(budget=budget)
    for _, one in ranked:
        usage.add_stats(one)
        usage.comparisons += one.comparisons
    usage.order_inconsistency = float(np.mean([r.diagnostics.order_inconsistency for r in reports]))
    usage.transitive_inconsistency = float(np.mean([r.diagnostics.transitive_inconsistency for r in reports]))
    weights = None
    if len(reports) == 1:
        order, scores, stderr = reports[0].order, np.asarray(reports[0].scores, dtype=np.float64), reports[0].stderr
    else:
        fused = lookup("fusion", options.fusion)([r.order for r in reports], m)
        order, scores, stderr = fused.ranking(), np.asarray(fused.scores, dtype=np.float64), None
        found = getattr(fused, "weights", None)  # a fusion that weighs the models says how (``peer``)
        weights = None if found is None else [float(w) for w in found]
    members: list[list[int]] = [[] for _ in range(m)]
    for i, g in enumerate(group):
        members[g].append(i)
    order = [i for u in order for i in members[int(u)]]  # each text's candidates together, in request order
    scores = scores[group]
    stderr = None if stderr is None else np.asarray(stderr, dtype=np.float64)[group]
    keep = order if not top_n else order[:top_n]
    results = [
        RankedItem(candidates[i].id, int(i), float(scores[i]), None if stderr is None else float(stderr[i]))
        for i in keep
    ]
    return RerankResult(results=results, usage=usage, per_model=reports, scores=scores, order=order,
                        fusion_weights=weights)


def _absolute(request: RerankRequest, models: Sequence[Comparator], out: RerankResult, kwise: bool = False
              ) -> np.ndarray:
    """Scores a threshold can use (:mod:`rerank.scores`), by request position: anchored to the first model
    with an absolute scale (its per-passage scores, one more model call through the same comparator), else
    to the probability of beating a typical candidate (one pairwise ranking by bt/hodgerank), else to the
    position; monotone along ``out.order``, equal for equal texts."""
    group, texts = _distinct(request.candidates)
    for model in models:
        scale = ABSOLUTE_SCALES.get(str(getattr(model, "kind", "")))
        if scale is not None and getattr(model, "pointwise", False):
            answer = model.score(request.query, texts)  # type: ignore[attr-defined]
            out.usage.add_call(answer)
            anchor = scale(np.asarray(answer, dtype=np.float64))[group]
            break
    else:
        single = len(out.per_model) == 1 and not request.stages and not kwise
        if single and request.options.aggregator in LOG_STRENGTH_AGGREGATORS:
            anchor = beat_typical(np.asarray(out.per_model[0].scores, dtype=np.float64))[group]
        else:
            anchor = by_position(out.order)
    return threshold_scores(out.order, anchor, group)


@dataclass
class SetwiseUsage:
    """What a setwise (K-wise) ranking spent: model calls (one per K-wise call, whatever its K), candidates shown
    over all calls, prompt tokens (a K-wise prompt is about K passages long) and sampling rounds."""

    calls: int = 0
    candidates_shown: int = 0
    tokens: int = 0
    rounds: int = 0
    budget: int = 0
    stopped_early: bool = False


def rerank_setwise(
    query: str,
    candidates: Sequence[Candidate],
    model: Any,
    *,
    sampler: str = "setwise-heapsort",
    k: int = 4,
    budget: int | float | None = None,
    calibration: str = "none",
    aggregator: str = "pairs:hodgerank",
    top_n: int = 10,
    seed: int = 0,
) -> tuple[list[RankedItem], SetwiseUsage]:
    """Re-rank ``candidates`` with a setwise model (``model.compare_sets``): :func:`run` with the K-wise options
    (validated by :func:`rerank.request.validate_kwise`, as every face's): a K-wise sampler chooses the groups,
    each call's distribution over its K candidates is a K-wise observation (``aggregation/kwise``). Sorting
    samplers (setwise heapsort, bubblesort) give their own order; the others are aggregated (``calibration``
    then ``aggregator``, e.g. ``plackett-luce`` or ``pairs:NAME``). ``budget`` counts calls (default: k^2).
    ``top_n``: the positions a sort settles. Raises :class:`RequestError` naming the bad field."""
    if not setwise_models({"model": model}):
        raise RequestError("model", "not a setwise model (it has no compare_sets)")
    options = RankOptions(sampler=sampler, set_size=k, budget=budget, calibration=calibration, aggregator=aggregator,
                          sampler_top_n=top_n, seed=seed)
    out = run(RerankRequest(query, tuple(candidates), ("model",), options=options), {"model": model})
    u = out.usage
    return out.results, SetwiseUsage(u.comparisons, u.candidates_shown, u.tokens, u.batches, u.budget, u.stopped_early)


class _SetAnswer:
    """A ``compare_sets`` call's stats as :meth:`Usage.add_call` reads a result."""

    truncated = None

    def __init__(self, stats: Any) -> None:
        self.stats = stats


def _rank_kwise(query: str, texts: list[str], model: Any, kwise: KwiseOptions) -> tuple[RankingReport, Usage]:
    """K-wise sampler -> ``model.compare_sets`` (one call per group, each one unit of budget) -> K-slot calibration
    -> aggregator, or the order a setwise sort built. Usage: calls, candidates shown, the prompts' tokens."""
    from .aggregation.kwise import run_kwise_sampler

    n = len(texts)
    usage = Usage(budget=kwise.budget)

    def compare(groups: list[list[int]]) -> list[np.ndarray]:
        probs, stats = model.compare_sets(query, [[texts[i] for i in g] for g in groups])
        usage.add_call(_SetAnswer(stats))
        usage.candidates_shown += sum(len(g) for g in groups)
        return probs

    scores = np.arange(n, 0, -1, dtype=np.float64)
    order, stderr, method = np.arange(n), None, kwise.sampler
    if n >= 2:
        outcome = run_kwise_sampler(lookup("kwise_sampler", kwise.sampler), n, kwise.budget, compare,
                                    k=min(kwise.k, n), seed=kwise.seed, top_n=kwise.top_n)
        usage.comparisons, usage.batches, usage.stopped_early = outcome.used, outcome.rounds, outcome.stopped_early
        if outcome.order is not None:
            order = np.asarray(outcome.order, dtype=np.int64)
            scores[order] = np.arange(n, 0, -1, dtype=np.float64)  # a sort's order: rank-based scores
        else:
            observations = lookup("kwise_calibration", kwise.calibration)(outcome.observations)
            result = lookup("kwise_aggregator", kwise.aggregator)(observations)
            order, scores = np.asarray(result.ranking()), np.asarray(result.scores, dtype=np.float64)
            stderr = None if result.stderr is None else np.asarray(result.stderr, dtype=np.float64)
            method = kwise.aggregator
    report = RankingReport(order=order, scores=scores, stderr=stderr, comparisons=usage.comparisons,
                           diagnostics=Diagnostics(0.0, 0, 0.0, 0, 0.0), method=method,
                           calibration=kwise.calibration)
    return report, usage


def _distinct(candidates: Sequence[Candidate]) -> tuple[np.ndarray, list[str]]:
    """Each candidate's index among the distinct texts (first occurrence first), and those texts."""
    first: dict[str, int] = {}
    group = np.fromiter((first.setdefault(c.text, len(first)) for c in candidates), dtype=np.int64,
                        count=len(candidates))
    return group, list(first)


def _cascade(
    request: RerankRequest, models: Sequence[Comparator], deadline: float | None,
    escalations: Sequence[Escalation | None] = (), kwise_last: KwiseOptions | None = None,
) -> RerankResult:
    """Stage i re-ranks the top ``depth_i`` of stage i-1's order; the rest keeps its place. A pointwise
    stage before the last ranks by its per-passage scores; any other earlier stage compares all pairs with
    the request's calibration and aggregator (:meth:`RankOptions.for_earlier_stage`); the last stage runs
    the request's options. A stage with an :class:`Escalation` asks its cheap judge every pair and its own
    model only the pairs the cheap judge is unsure of; its report counts both. A setwise last stage ranks by
    its K-wise calls (``kwise_last``)."""
    candidates, options = request.candidates, request.options
    order = list(range(len(candidates)))
    usage = Usage()
    per_model: list[RankingReport] = []
    for i, (spec, model) in enumerate(zip(request.stages, models, strict=True)):
        t0 = time.monotonic()
        top = order[: min(spec.depth, len(order))]
        last = i == len(request.stages) - 1
        pointwise = not last and bool(getattr(model, "pointwise", False))
        escalation = escalations[i] if i < len(escalations) else None
        escalating = None
        if pointwise:
            answer = model.score(request.query, [candidates[j].text for j in top])  # type: ignore[attr-defined]
            usage.add_call(answer)  # through a server's scheduler: the request's share of the calls' stats
            scores = np.asarray(answer, dtype=np.float64)
            top = [top[j] for j in np.argsort(-scores, kind="stable")]
            calls = len(top)
        else:
            kwise = kwise_last if last else None
            opts = options if last else options.for_earlier_stage(kwise_last is not None)
            k = len(top)
            budget = kwise.budget if kwise is not None else min(validate_options(opts, k), k * (k - 1))
            if escalation is not None:
                model = escalating = EscalatingComparator(escalation, model)
            sub = _rank(request.query, [candidates[j] for j in top], [model], opts, budget, None, deadline,
                        [kwise])
            top = [top[r.index] for r in sub.results]
            calls = sub.usage.comparisons
            usage.add_stats(sub.usage)
            if escalating is not None:
                usage.add_stats(escalating.usage)  # both judges' model stats (the answers it returns carry none)
                calls = escalating.escalated
                usage.comparisons += escalating.asked
            if last:
                usage.order_inconsistency = sub.usage.order_inconsistency
                usage.transitive_inconsistency = sub.usage.transitive_inconsistency
                usage.budget = sub.usage.budget
            per_model.extend(sub.per_model)
        order = top + order[len(top):]
        usage.comparisons += calls
        record = StageUsage(spec.model, len(top), calls, pointwise, (time.monotonic() - t0) * 1000.0)
        if escalating is not None and escalation is not None:
            record = replace(record, cheap_comparisons=escalating.asked,
                             cheap_answered=escalating.asked - escalating.escalated,
                             escalation_threshold=escalation.threshold)
        usage.stages.append(record)
    n = len(order)
    scores = np.empty(n, dtype=np.float64)
    scores[order] = np.arange(n, 0, -1, dtype=np.float64)  # rank-based: stages score on different scales
    keep = order if not request.top_n else order[: request.top_n]
    results = [RankedItem(candidates[j].id, int(j), float(scores[j])) for j in keep]
    return RerankResult(results=results, usage=usage, per_model=per_model, stages=usage.stages, scores=scores,
                        order=order)


def rerank(
    query: str,
    candidates: Sequence[Candidate],
    models: Sequence[Comparator],
    options: RankOptions = DEFAULT_OPTIONS,
    *,
    top_n: int | None = None,
    deadline: float | None = None,
) -> RerankResult:
    """Re-rank ``candidates`` (first-stage order) for ``query`` with one or more pairwise models (fused
    with ``options.fusion``): :func:`run` with the models named by position. Raises :class:`RequestError`
    naming the bad field."""
    if not models:
        raise RequestError("models", "no model to compare with")
    names = tuple(f"models[{i}]" for i in range(len(models)))
    request = RerankRequest(query, tuple(candidates), names, (), options, top_n if top_n is not None else 0)
    return run(request, dict(zip(names, models, strict=True)), deadline=deadline)


def rerank_cascade(
    query: str,
    candidates: Sequence[Candidate],
    stages: Sequence[Stage],
    options: RankOptions = DEFAULT_OPTIONS,
    *,
    top_n: int | None = None,
    deadline: float | None = None,
) -> RerankResult:
    """Multi-stage re-ranking as duoT5 is used in its papers (mono on the top k1, pairwise on the top k2 of
    that): :func:`run` with ``stages``. Scores are rank-based (n - position); ``usage`` sums the stages'
    model calls (its diagnostics and budget are the last stage's; a stage with selective escalation counts
    its cheap judge's calls and its own); ``stages`` reports each stage."""
    if not stages:
        raise RequestError("stages", "no stage given")
    names = [s.name or f"stages[{i}]" for i, s in enumerate(stages)]
    comparators: dict[str, Comparator] = {}
    for name, stage in zip(names, stages, strict=True):
        comparators.setdefault(name, stage.model)
    specs = tuple(StageSpec(n, s.depth, None if s.escalation is None else s.escalation.threshold)
                  for n, s in zip(names, stages, strict=True))
    request = RerankRequest(query, tuple(candidates), (), specs, options, top_n if top_n is not None else 0)
    return run(request, comparators, deadline=deadline, escalations=[s.escalation for s in stages])
