"""The request object on the wire: ``rerank.v1`` messages and JSON option fields to and from
:class:`~rerank.request.RerankRequest` and :class:`~rerank.request.Usage`, in one place for the server (gRPC
and HTTP) and :mod:`rerank.client`. Functions take the generated ``pb2`` module as an argument, so this module
imports neither the server nor the pipeline."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from .request import Candidate, RankOptions, RequestError, RerankRequest, StageSpec, StageUsage, Usage

_DEFAULTS = RankOptions()
_OPTIONAL = ("both_orders", "prior_weight", "window", "skip", "sampler_top_n", "rounds", "set_size")
_USAGE_SCALARS = tuple(f.name for f in fields(Usage) if f.name != "stages")


def options_from_fields(values: Mapping[str, Any]) -> tuple[RankOptions, tuple[StageSpec, ...]]:
    """``RankOptions`` fields by proto name (only those set: a JSON body's, or a message's set fields) ->
    the options and the cascade stages. ``comparisons`` and ``fraction`` are one budget (two is an error
    naming the second)."""
    if "comparisons" in values and "fraction" in values:
        raise RequestError("options.fraction", "give one of comparisons, fraction, not several (they are alternatives)")
    budget: int | float | None = None
    if "comparisons" in values:
        budget = int(values["comparisons"])
    elif "fraction" in values:
        budget = float(values["fraction"])
    options = RankOptions(
        sampler=values.get("sampler") or _DEFAULTS.sampler,
        budget=budget,
        aggregator=values.get("aggregator") or _DEFAULTS.aggregator,
        calibration=values.get("calibration") or _DEFAULTS.calibration,
        fusion=values.get("fusion") or _DEFAULTS.fusion,
        seed=int(values.get("seed") or 0),
        time_budget_ms=float(values["time_budget_ms"]) if values.get("time_budget_ms") else None,
        **{name: values[name] for name in _OPTIONAL if values.get(name) is not None},
    )
    stages = tuple(_stage(s) for s in values.get("stages") or ())
    return options, stages


def _stage(value: Any) -> StageSpec:
    if isinstance(value, Mapping):
        threshold = value.get("escalation_threshold")
        return StageSpec(str(value.get("model") or ""), int(value.get("depth") or 0),
                         None if threshold is None else float(threshold))
    threshold = value.escalation_threshold if value.HasField("escalation_threshold") else None
    return StageSpec(value.model, int(value.depth), threshold)


def set_fields(message: Any) -> dict[str, Any]:
    """A message's fields that were set (proto3: non-default, or present), by name."""
    return {f.name: value for f, value in message.ListFields()}


def request_from_message(message: Any) -> RerankRequest:
    """A ``RerankRequest`` message -> the request object (candidates, models, options, stages, top_n)."""
    options, stages = options_from_fields(set_fields(message.options)) if message.HasField("options") else (
        _DEFAULTS, ())
    candidates = tuple(
        Candidate(c.id, c.text, c.score if c.HasField("score") else None) for c in message.candidates
    )
    return RerankRequest(message.query, candidates, tuple(message.models), stages, options, int(message.top_n))


def options_message(pb2: Any, options: RankOptions, stages: Sequence[StageSpec] = ()) -> Any:
    """The ``RankOptions`` message of options (defaults left unset, so the server's apply) and stages."""
    msg = pb2.RankOptions(
        sampler="" if options.sampler == _DEFAULTS.sampler else options.sampler,
        aggregator="" if options.aggregator == _DEFAULTS.aggregator else options.aggregator,
        calibration="" if options.calibration == _DEFAULTS.calibration else options.calibration,
        fusion="" if options.fusion == _DEFAULTS.fusion else options.fusion,
        seed=options.seed,
        time_budget_ms=int(options.time_budget_ms or 0),
    )
    if isinstance(options.budget, bool):
        raise TypeError("budget must be an int (comparisons) or a float (fraction)")
    if isinstance(options.budget, int):
        msg.comparisons = options.budget
    elif isinstance(options.budget, float):
        msg.fraction = options.budget
    for name in _OPTIONAL:
        value = getattr(options, name)
        if value is not None and value != getattr(_DEFAULTS, name):
            setattr(msg, name, value)
    for stage in stages:
        added = msg.stages.add(model=stage.model, depth=stage.depth)
        if stage.escalation_threshold is not None:
            added.escalation_threshold = stage.escalation_threshold
    return msg


def request_message(pb2: Any, request: RerankRequest, *, return_text: bool = False, score_format: int = 0) -> Any:
    """The request object -> a ``RerankRequest`` message (what :mod:`rerank.client` sends)."""
    message = pb2.RerankRequest(
        query=request.query,
        top_n=request.top_n,
        models=list(request.models),
        options=options_message(pb2, request.options, request.stages),
        return_text=return_text,
        score_format=score_format,
    )
    add = message.candidates.add
    for c in request.candidates:
        if c.score is None:
            add(id=c.id, text=c.text)
        else:
            add(id=c.id, text=c.text, score=float(c.score))
    return message


def fill_usage(message: Any, usage: Usage) -> None:
    """Copy a usage into a ``Usage`` message, the cascade's stages included."""
    for name in _USAGE_SCALARS:
        setattr(message, name, getattr(usage, name))
    add = message.stages.add
    for stage in usage.stages:
        added = add(model=stage.model, depth=stage.depth, comparisons=stage.comparisons, pointwise=stage.pointwise,
                    elapsed_ms=stage.elapsed_ms, cheap_comparisons=stage.cheap_comparisons,
                    cheap_answered=stage.cheap_answered)
        if stage.escalation_threshold is not None and math.isfinite(stage.escalation_threshold):
            added.escalation_threshold = stage.escalation_threshold


def usage_from_message(message: Any) -> Usage:
    """A ``Usage`` message -> :class:`Usage`, with each cascade stage's usage (escalation included)."""
    stages = [StageUsage(s.model, s.depth, s.comparisons, s.pointwise, s.elapsed_ms, s.cheap_comparisons,
                         s.cheap_answered, s.escalation_threshold if s.HasField("escalation_threshold") else None)
              for s in message.stages]
    return Usage(**{name: getattr(message, name) for name in _USAGE_SCALARS}, stages=stages)
