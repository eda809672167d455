"""The one request object behind every face, and the one place that validates it.

gRPC (:mod:`rerank.server.wire`), HTTP (:mod:`rerank.server.http`), the CLI (``rerank rank``), the Python API
(:func:`rerank.pipeline.run`) and :mod:`rerank.client` each build one :class:`RerankRequest`;
:func:`validate` checks it against the server's (or caller's) :class:`Limits` and raises a
:class:`RequestError` whose ``path`` names the field in this object's terms (``candidates[3].text``,
``stages[1].depth``, ``options.window``). Each face reports the path in its own field names through a
:class:`FieldNames` table (``documents[3]`` on Cohere, ``texts[3]`` on TEI, ``options.stages[1].depth`` on
gRPC, ``--stage`` on the CLI); the detail text is the same on every face.

This module imports no pipeline, model or server code (only the engine's name registry), so the client
imports it without the engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from .aggregation import check_budget, resolve_budget
from .aggregation.registry import (
    DEFAULT_AGGREGATOR,
    DEFAULT_CALIBRATION,
    DEFAULT_SAMPLER,
    REGISTRY,
    calibration_conflict,
    default_prior_weight,
)
from .aggregation.samplers import PARAMETER_KEYWORDS, SAMPLER_PARAMETERS

Path = tuple[str | int, ...]


def path_text(path: Path) -> str:
    """``("candidates", 3, "text")`` -> ``candidates[3].text``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def parse_path(text: str) -> Path:
    """``candidates[3].text`` -> ``("candidates", 3, "text")`` (the inverse of :func:`path_text`)."""
    return tuple(int(i) if i else name for name, i in re.findall(r"([^.\[\]]+)|\[(\d+)\]", text))


class RequestError(ValueError):
    """Invalid request input: ``field`` names the offending field, ``detail`` says what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.detail = message
        super().__init__(f"{field}: {message}")

    @property
    def path(self) -> Path:
        return parse_path(self.field)

    def renamed(self, field: str) -> RequestError:
        """The same error under a face's name of the field (same class, same detail)."""
        out = type(self).__new__(type(self))
        RequestError.__init__(out, field, self.detail)
        return out


class TooLargeError(RequestError):
    """Over a per-request size limit (``max_candidates``): RESOURCE_EXHAUSTED / 413, not a plain 400."""


@dataclass(frozen=True)
class Candidate:
    id: str
    text: str
    score: float | None = None  # first-stage score, informational: the candidates' order is the first stage


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
    # sampler parameters (SAMPLER_PARAMETERS says which sampler takes which); None = the sampler's own
    window: int | None = None  # window size m of window and skip
    skip: int | None = None  # dilation of skip
    sampler_top_n: int | None = None  # positions heapsort/quicksort/sliding/active settle (default: top_n, else 10)
    rounds: int | None = None  # at most this many sampling rounds (model batches), any sampler
    set_size: int | None = None  # candidates per K-wise call of a setwise model, K (default DEFAULT_K)

    def sampler_keywords(self) -> dict[str, int]:
        """The sampler parameters set, under the sampler function's keywords (``window`` -> ``m``)."""
        given = {"window": self.window, "skip": self.skip, "top_n": self.sampler_top_n}
        return {PARAMETER_KEYWORDS[k]: int(v) for k, v in given.items() if v is not None}

    def prior(self) -> float:
        """The prior weight asked for, else the aggregator's default."""
        return default_prior_weight(self.aggregator) if self.prior_weight is None else float(self.prior_weight)

    def for_earlier_stage(self, kwise_last: bool = False) -> RankOptions:
        """What a cascade stage before the last runs: all pairs with the request's calibration and aggregator
        (the pairwise defaults where the last stage is setwise: the request's name K-wise methods); the sampler,
        its parameters, the budget and the time budget belong to the last stage."""
        earlier = replace(self, sampler="all", budget=None, time_budget_ms=None, window=None, skip=None,
                          sampler_top_n=None, rounds=None, set_size=None)
        if kwise_last:
            earlier = replace(earlier, aggregator=DEFAULT_AGGREGATOR, calibration=DEFAULT_CALIBRATION,
                              prior_weight=None)
        return earlier


#: A setwise model's K-wise defaults, where the request leaves the pairwise default (``auto`` sampler,
#: ``symmetric`` calibration; a pairwise aggregator NAME runs on the calls' implied pairs, ``pairs:NAME``)
DEFAULT_K = 4
KWISE_DEFAULT_SAMPLER = "setwise-heapsort"
KWISE_DEFAULT_CALIBRATION = "none"


@dataclass(frozen=True)
class KwiseOptions:
    """How a setwise model ranks (resolved by :func:`validate_kwise`): the K-wise sampler, K, the K-slot
    calibration, the aggregator (``plackett-luce`` or ``pairs:NAME``), the budget in model calls (a K-wise call
    is one call), the positions a sort settles and the seed."""

    sampler: str
    k: int
    calibration: str
    aggregator: str
    budget: int
    top_n: int
    seed: int


@dataclass
class StageUsage:
    """What one cascade stage did: the candidates it re-ranked (``depth``) and its model calls
    (``comparisons``: pairwise comparisons, or candidates scored by a pointwise stage). A stage with selective
    escalation also says how many pairs its cheap judge answered (``cheap_answered``, of ``cheap_comparisons``
    asked) under the calibrated ``escalation_threshold``; ``comparisons`` are then the escalated pairs only."""

    model: str
    depth: int
    comparisons: int
    pointwise: bool
    elapsed_ms: float
    cheap_comparisons: int = 0
    cheap_answered: int = 0
    escalation_threshold: float | None = None


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
    tokens: int = 0  # this request's share of the tokens the model ran
    candidates_shown: int = 0  # K-wise calls: the candidates shown, summed over calls (K per call)
    stages: list[StageUsage] = field(default_factory=list)  # a cascade's stages, in order

    def add_call(self, result: object) -> None:
        """Add a ``compare_batch`` result's stats (a model's ``CompareResult`` or the server's answer)."""
        stats = getattr(result, "stats", None)
        if stats is None:
            return
        self.tokenize_ms += float(getattr(stats, "tokenize_s", 0.0)) * 1000.0
        self.run_ms += (float(getattr(stats, "run_s", 0.0)) + float(getattr(stats, "postprocess_s", 0.0))) * 1000.0
        self.queue_ms += float(getattr(stats, "queue_s", 0.0)) * 1000.0
        self.tokens += round(float(getattr(stats, "tokens", 0) or 0))
        cut = getattr(result, "truncated", None)
        self.truncated_items += (
            int(sum(bool(x) for x in cut)) if cut is not None else int(getattr(stats, "truncated_items", 0))
        )

    def add_stats(self, other: Usage) -> None:
        """Add another ranking's model stats (a stage's, or one model's of several)."""
        for name in ("truncated_items", "tokenize_ms", "queue_ms", "run_ms", "batches", "tokens", "candidates_shown"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.partial = self.partial or other.partial
        self.stopped_early = self.stopped_early or other.stopped_early


@dataclass(frozen=True)
class StageSpec:
    """One cascade stage: the model named ``model`` re-ranks the top ``depth`` of the previous stage. With
    ``escalation_threshold`` (selective escalation, Trust or Escalate), the previous stage's model answers each
    pair first and this stage's model only the pairs where that cheap answer's confidence max(p, 1 - p) is below
    the threshold (calibrated offline: ``rerank rank --escalate-alpha``)."""

    model: str
    depth: int
    escalation_threshold: float | None = None


@dataclass(frozen=True)
class RerankRequest:
    """A re-ranking request as every face builds it: candidates in first-stage order, the models by name
    (empty: the default model; several are fused) or a cascade of ``stages``, the options, and ``top_n``
    (0 = all); ``absolute_scores`` asks for scores comparable across requests besides the latent ones."""

    query: str
    candidates: tuple[Candidate, ...]
    models: tuple[str, ...] = ()
    stages: tuple[StageSpec, ...] = ()
    options: RankOptions = RankOptions()
    top_n: int = 0
    absolute_scores: bool = False  # also compute scores a threshold can use (rerank.scores)


@dataclass(frozen=True)
class Limits:
    """What the receiver allows: ``models`` (served names; None = any), the default model, the most
    candidates per request and each model's ``max_chars`` per text (None = no limit)."""

    models: Collection[str] | None = None
    default_model: str = ""
    max_candidates: int | None = None
    max_chars: Mapping[str, int | None] = field(default_factory=dict)
    setwise: Mapping[str, int] = field(default_factory=dict)  # the setwise models: name -> max_k (most K per call)
    pointwise: Collection[str] = ()  # the models that score each passage alone (a cascade stage ranks by scores)


@dataclass(frozen=True)
class Checked:
    """A valid request's derived values: the model names in order (one per stage for a cascade), the
    budget in comparisons of the (last) ranking, the stage depths (empty unless a cascade), and the K-wise
    options of each setwise model that ranks (all models; a cascade's last stage)."""

    models: tuple[str, ...]
    budget: int
    depths: tuple[int, ...]
    kwise: Mapping[str, KwiseOptions] = field(default_factory=dict)


def check_string(value: str, field_name: str) -> None:
    """A string that cannot be encoded as UTF-8 (a lone surrogate, from JSON ``"\\ud800"``) is refused."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(field_name, f"is not valid Unicode (a lone surrogate at character {exc.start})") from None


def check_text(text: str, field_name: str, max_chars: int | None = None, model: str = "") -> None:
    """The one rule for query and candidate texts: not empty or blank, valid Unicode, within ``max_chars``."""
    if not text or not text.strip():
        raise RequestError(field_name, "must not be empty")
    check_string(text, field_name)
    if max_chars is not None and len(text) > max_chars:
        raise RequestError(
            field_name, f"has {len(text)} characters; the limit of model {model!r} is {max_chars} (max_chars)"
        )


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

    The one budget rule for every face: a budget that resolves to fewer comparisons than ``n_items``
    candidates need (:func:`~rerank.aggregation.minimum_budget`) is an error naming the budget, k and the
    minimum. ``n_items=None`` checks only what does not depend on k (returns 0).
    """
    for kind in ("sampler", "aggregator", "calibration", "fusion"):
        _check_known(kind, f"options.{kind}", getattr(options, kind))
    conflict = calibration_conflict(options.aggregator, options.calibration)
    if conflict:
        raise RequestError("options.calibration", conflict)
    _check_sampler_parameters(options)
    budget = _checked_budget(options.budget, budget_field, lambda: resolve_budget(2, options.budget) if n_items is None
                             else check_budget(n_items, options.budget))
    if options.time_budget_ms is not None and not (options.time_budget_ms > 0):
        raise RequestError("options.time_budget_ms", f"must be > 0, got {options.time_budget_ms}")
    if options.prior_weight is not None and not (0 <= options.prior_weight < float("inf")):
        raise RequestError("options.prior_weight", f"must be >= 0, got {options.prior_weight}")
    return 0 if n_items is None else budget


def validate_candidates(query: str, candidates: Sequence[Candidate], max_candidates: int | None = None) -> None:
    """Query and candidates (not empty, unique non-empty ids, texts by :func:`check_text`)."""
    check_text(query, "query")
    if not candidates:
        raise RequestError("candidates", "must not be empty")
    if max_candidates is not None and len(candidates) > max_candidates:
        raise TooLargeError(
            "candidates", f"{len(candidates)} candidates exceed the limit of {max_candidates} (max_candidates)"
        )
    seen: set[str] = set()
    for i, c in enumerate(candidates):
        if not c.id:
            raise RequestError(f"candidates[{i}].id", "must not be empty")
        check_string(c.id, f"candidates[{i}].id")
        if c.id in seen:
            raise RequestError(f"candidates[{i}].id", f"duplicate id {c.id!r}")
        seen.add(c.id)
        if not c.text or not c.text.strip() or not c.text.isascii():  # the message is built only for a bad one
            check_text(c.text, f"candidates[{i}].text")


def resolve_models(request: RerankRequest, limits: Limits) -> tuple[str, ...]:
    """The model names the request ranks with (one per stage for a cascade; the default when none is named),
    each checked against ``limits.models``."""
    if request.stages and request.models:
        raise RequestError("models", "give either models or stages (a cascade), not both")
    names: list[str] = []
    if request.stages:
        for i, stage in enumerate(request.stages):
            _known(stage.model, f"stages[{i}].model", limits)
            if isinstance(stage.depth, bool) or stage.depth < 1:
                raise RequestError(f"stages[{i}].depth", f"must be >= 1, got {stage.depth}")
            names.append(stage.model)  # the same model may serve two stages
        return tuple(names)
    for i, name in enumerate(request.models):
        _known(name, f"models[{i}]", limits)
        if name in names:
            raise RequestError(f"models[{i}]", f"model {name!r} named twice")
        names.append(name)
    if not names:
        if not limits.default_model:
            raise RequestError("models", "no model to compare with")
        names.append(limits.default_model)
    return tuple(names)


def validate_escalation(stages: Sequence[StageSpec], limits: Limits) -> None:
    """Selective escalation in a cascade: a stage with ``escalation_threshold`` has the stage before it as its
    cheap judge (so not the first stage), compares pairs (not a pointwise stage before the last, not a setwise
    last stage), and its threshold is a confidence max(p, 1 - p): at least 0.5 (``inf``: every pair escalates)."""
    for i, stage in enumerate(stages):
        threshold = stage.escalation_threshold
        if threshold is None:
            continue
        name = f"stages[{i}].escalation_threshold"
        last = i == len(stages) - 1
        if not last and stage.model in limits.pointwise:
            raise RequestError(name, "a pointwise stage does not compare pairs")
        if last and stage.model in limits.setwise:
            raise RequestError(name, "a setwise stage does not compare pairs")
        if isinstance(threshold, bool) or not threshold >= 0.5:  # NaN fails too
            raise RequestError(name, f"must be >= 0.5 (a confidence max(p, 1 - p)), got {threshold}")
        if i == 0:
            raise RequestError(name, "the first stage has no cheap judge: the stage before an escalating stage "
                                     "answers its pairs first")


def check_escalation_targets(alpha: float, delta: float) -> None:
    """The target agreement ``1 - alpha`` and the risk ``delta`` of an escalation calibration: each in (0, 1)."""
    for name, value in (("alpha", alpha), ("delta", delta)):
        if isinstance(value, bool) or not 0 < value < 1:
            raise RequestError(f"escalation.{name}", f"must lie in (0, 1), got {value}")


def validate_escalation_settings(
    alpha: float, delta: float, queries: int, reference: str, stages: int, graded: bool
) -> None:
    """The calibration of selective escalation in a cascade's last stage (``rerank rank --escalate-*``): 2 or
    more stages (the one before the last is the cheap judge), ``alpha`` and ``delta`` in (0, 1), at least one
    calibration query, and grades where the reference is ``qrels``."""
    if stages < 2:
        raise RequestError("escalation", "selective escalation needs a cascade of 2 or more stages: the stage "
                                         "before the last is the cheap judge")
    check_escalation_targets(alpha, delta)
    if isinstance(queries, bool) or queries < 1:
        raise RequestError("escalation.queries", f"must be >= 1, got {queries}")
    if reference not in ("strong", "qrels"):
        raise RequestError("escalation.reference", f"unknown reference {reference!r}; known: strong, qrels")
    if reference == "qrels" and not graded:
        raise RequestError("escalation.reference", "qrels needs relevance judgements (qrels)")


def _known(name: str, field_name: str, limits: Limits) -> None:
    check_string(name, field_name)
    if limits.models is not None and name not in limits.models:
        known = ", ".join(limits.models)
        raise RequestError(field_name, f"unknown model {name!r}; served: {known}")


def validate(request: RerankRequest, limits: Limits = Limits()) -> Checked:
    """Check the whole request, in one order for every face: size, models or stages, options, top_n,
    query and candidates, then each text against each model's ``max_chars``. Raises :class:`RequestError`
    (:class:`TooLargeError` over ``max_candidates``) naming the field; returns the derived values."""
    n = len(request.candidates)
    if limits.max_candidates is not None and n > limits.max_candidates:
        raise TooLargeError(
            "candidates", f"{n} candidates exceed the limit of {limits.max_candidates} (max_candidates)"
        )
    models = resolve_models(request, limits)
    validate_escalation(request.stages, limits)
    if isinstance(request.top_n, bool) or request.top_n < 0:
        raise RequestError("top_n", f"must be >= 0, got {request.top_n}")
    validate_candidates(request.query, request.candidates)
    budget, kwise = validate_ranking_options(request, models, limits)
    for name in dict.fromkeys(models):
        chars = limits.max_chars.get(name)
        if chars is None:
            continue
        check_text(request.query, "query", chars, name)
        for i, c in enumerate(request.candidates):
            if len(c.text) > chars:
                check_text(c.text, f"candidates[{i}].text", chars, name)
    return Checked(models, min(budget, n * (n - 1)), tuple(s.depth for s in request.stages), kwise)


def validate_ranking_options(
    request: RerankRequest, models: tuple[str, ...], limits: Limits, n_items: int | None = None
) -> tuple[int, dict[str, KwiseOptions]]:
    """The options against the models that rank with them (every model; a cascade's last stage): pairwise
    models by :func:`validate_options`, setwise ones by :func:`validate_kwise`, for ``n_items`` candidates
    (default: the request's). Returns the pairwise budget (a setwise-only request: its calls) and the K-wise
    options by model."""
    n = len(request.candidates) if n_items is None else n_items
    ranking = list(dict.fromkeys(models[-1:] if request.stages else models))
    n_ranked = min(request.stages[-1].depth, n) if request.stages else n
    pairwise = [m for m in ranking if m not in limits.setwise]
    options = request.options
    budget = 0
    if pairwise:
        if options.set_size is not None:
            raise RequestError("options.set_size", "a pairwise model takes none: it is the number of candidates per "
                                                   "call of a setwise model")
        budget = validate_options(options, n)
    else:
        _check_known("fusion", "options.fusion", options.fusion)
    kwise = {m: validate_kwise(options, n_ranked, limits.setwise[m], top_n=request.top_n)
             for m in ranking if m in limits.setwise}
    if not pairwise and kwise:
        budget = next(iter(kwise.values())).budget
    return budget, kwise


def _checked_budget(budget: int | float | None, field_name: str, count: Callable[[], int]) -> int:
    """A budget in comparisons (or calls) by ``count``, its errors (a fraction outside (0, 1], too few for the
    candidates) a :class:`RequestError` on ``field_name``."""
    if isinstance(budget, float) and not (0.0 < budget <= 1.0):
        raise RequestError(field_name, f"a fraction must be in (0, 1], got {budget}")
    try:
        return count()
    except ValueError as exc:
        raise RequestError(field_name, str(exc)) from None


def _check_known(kind: str, field_name: str, value: str) -> None:
    if value not in REGISTRY[kind]:
        known = ", ".join(sorted(REGISTRY[kind]))
        raise RequestError(field_name, f"unknown {kind.replace('_', ' ')} {value!r}; known: {known}")


def validate_kwise(options: RankOptions, n_items: int, max_k: int, *, top_n: int = 0) -> KwiseOptions:
    """The one check of a setwise model's options (K-wise samplers, K, K-slot calibration, aggregation): the
    pairwise defaults stand for the K-wise ones (``auto`` -> ``setwise-heapsort``, ``symmetric`` -> ``none``); a
    pairwise aggregator NAME runs on the calls' implied pairs (``pairs:NAME``); ``set_size`` K (default
    :data:`DEFAULT_K`) lies in [2, min(candidates, the model's ``max_k``)]; the budget counts calls (a count, or a
    fraction of k(k-1) as for pairs; unset: k^2, as many as a sort needs); pairwise-only options are refused.
    ``n_items`` is the number of candidates the model ranks."""
    sampler = KWISE_DEFAULT_SAMPLER if options.sampler == DEFAULT_SAMPLER else options.sampler
    _check_known("kwise_sampler", "options.sampler", sampler)
    calibration = KWISE_DEFAULT_CALIBRATION if options.calibration == DEFAULT_CALIBRATION else options.calibration
    _check_known("kwise_calibration", "options.calibration", calibration)
    aggregator = options.aggregator
    if aggregator not in REGISTRY["kwise_aggregator"]:
        aggregator = f"pairs:{aggregator}"
    _check_known("kwise_aggregator", "options.aggregator", aggregator)
    _check_known("fusion", "options.fusion", options.fusion)
    for name in ("window", "skip", "rounds", "both_orders", "prior_weight", "time_budget_ms"):
        if getattr(options, name) is not None:
            raise RequestError(f"options.{name}", "a setwise model does not take it (its K-wise calls rank without it)")
    most = min(n_items, max_k)
    k = min(DEFAULT_K, max(most, 2)) if options.set_size is None else options.set_size
    if isinstance(k, bool) or int(k) != k or (n_items >= 2 and not 2 <= k <= most):
        raise RequestError("options.set_size", f"must be between 2 and min(candidates, the model's max_k) = {most}, "
                                               f"got {k!r}")
    top = options.sampler_top_n
    if top is not None and (isinstance(top, bool) or int(top) != top or top < 1):
        raise RequestError("options.sampler_top_n", f"must be a whole number >= 1, got {top!r}")
    budget = n_items * n_items if options.budget is None else _checked_budget(
        options.budget, "options.budget", lambda: check_budget(n_items, options.budget))
    return KwiseOptions(sampler, int(k), calibration, aggregator, budget, int(top or top_n or 10), options.seed)


# --- each face's names of the fields ------------------------------------------------------------------
Rename = Callable[[Path, RerankRequest | None], str | None]


@dataclass(frozen=True)
class FieldNames:
    """A face's names of the request's fields: ``rename(path, request)`` gives the face's name of a path
    (None: the path's own text), so every face reports an error in the fields its caller set."""

    face: str
    rename: Rename = lambda path, request: None

    def name(self, path: Path, request: RerankRequest | None = None) -> str:
        return self.rename(path, request) or path_text(path)

    def error(self, exc: RequestError, request: RerankRequest | None = None) -> RequestError:
        return exc.renamed(self.name(exc.path, request))


def _budget_name(request: RerankRequest | None) -> str:
    budget = request.options.budget if request is not None else None
    return "fraction" if isinstance(budget, float) else "comparisons" if isinstance(budget, int) else "budget"


def _grpc_rename(path: Path, request: RerankRequest | None) -> str | None:
    if path[:1] == ("stages",):
        return path_text(("options", *path))
    if path == ("options", "budget"):
        return f"options.{_budget_name(request)}"
    return None


#: Python (:func:`rerank.pipeline.run`): the request object's own names.
PYTHON_NAMES = FieldNames("python")
#: gRPC and ``rerank.client``: stages live in ``options.stages``; the budget is ``comparisons`` or ``fraction``.
GRPC_NAMES = FieldNames("grpc", _grpc_rename)
