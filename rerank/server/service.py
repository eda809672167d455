"""The ``rerank.v1.Reranker`` servicer: parse and check a request, run :func:`rerank.pipeline.rerank` over
the batching schedulers, format the answer, and map every failure to a precise status.

Statuses (one table for both faces, :mod:`.errors`): bad input -> INVALID_ARGUMENT naming the field (also
in the ``rerank-field`` trailing metadata);
over ``max_candidates`` (candidates, or k of RetrieveAndRerank) or a full queue -> RESOURCE_EXHAUSTED with the
limit; the caller's deadline passed (without a time budget) -> DEADLINE_EXCEEDED; RetrieveAndRerank on a
server without an index -> FAILED_PRECONDITION; shutting down -> UNAVAILABLE. The servicer keeps no
per-request state: each call builds its own :class:`Ticket` and comparators.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from ..aggregation.registry import lookup
from ..pipeline import (
    Candidate,
    RankOptions,
    RequestError,
    RerankResult,
    Stage,
    Usage,
    rerank,
    rerank_cascade,
    validate_candidates,
    validate_options,
)
from .config import ServerConfig
from .errors import NO_INDEX, OK, TOO_LARGE, ServiceError, Status, status_of
from .metrics import Metrics
from .scheduler import BatchScheduler, DeadlineExpiredError, RequestCancelledError, Ticket

log = logging.getLogger("rerank.server")

FIELD_METADATA = "rerank-field"
SERVER_TIME_METADATA = "rerank-server-ms"
_NO_DEADLINE_S = 1e8  # grpc reports a far-future deadline when the caller set none
_DEFAULTS = RankOptions()
DEFAULT_RETRIEVE_K = 100  # RetrieveAndRerank with k = 0 (at most max_candidates)


@dataclass(frozen=True)
class ServedModel:
    """A model as the server serves it: the model, its scheduler and what ListModels reports."""

    name: str
    model: Any
    scheduler: BatchScheduler
    kind: str
    provider: str
    max_query_tokens: int
    max_passage_tokens: int
    max_chars: int | None

    @classmethod
    def wrap(cls, name: str, model: Any, scheduler: BatchScheduler) -> ServedModel:
        """Describe any comparator; a ``PairwiseModel`` gives kind, provider, token budgets and max_chars."""
        options = getattr(model, "options", None)
        return cls(
            name=name,
            model=model,
            scheduler=scheduler,
            kind=str(getattr(model, "kind", "") or "custom"),
            provider=str(getattr(model, "provider", "") or "python"),
            max_query_tokens=int(getattr(model, "max_query_tokens", 0) or 0),
            max_passage_tokens=int(getattr(model, "max_passage_tokens", 0) or 0),
            max_chars=getattr(options, "max_chars", None),
        )


class InFlight:
    """The RPCs being handled, as a context manager per call; :meth:`wait_idle` blocks until none is."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.count = 0

    def __enter__(self) -> None:
        with self._cond:
            self.count += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self.count -= 1
            if self.count == 0:
                self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.count == 0, timeout)


def check_text(text: str, field: str, max_chars: int | None, model: str) -> None:
    if not text or not text.strip():
        raise RequestError(field, "must not be empty")
    if max_chars is not None and len(text) > max_chars:
        raise RequestError(
            field, f"has {len(text)} characters; the limit of model {model!r} is {max_chars} (max_chars)"
        )


class RerankerService:
    """Implements ``Rerank``, ``Compare`` and ``ListModels`` (registered with the generated helper)."""

    def __init__(
        self,
        pb2: Any,
        models: Mapping[str, ServedModel],
        default_model: str,
        config: ServerConfig,
        metrics: Metrics,
        index: Any = None,
    ) -> None:
        if default_model not in models:
            raise ValueError(f"default model {default_model!r} is not served")
        self.pb2 = pb2
        self.models = dict(models)
        self.default_model = default_model
        self.config = config
        self.metrics = metrics
        self.index = index  # a rerank.retrieval.Index (thread-safe search) or None
        self.handlers: dict[str, Callable[[Any, Any], Any]] = {
            "Rerank": self._rerank,
            "Compare": self._compare,
            "ListModels": self._list_models,
            "RetrieveAndRerank": self._retrieve_and_rerank,
        }
        self.inflight = InFlight()

    # --- RPCs ---------------------------------------------------------------------------------------
    def Rerank(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (proto name)
        return self._handle("Rerank", request, context)

    def Compare(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._handle("Compare", request, context)

    def ListModels(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._handle("ListModels", request, context)

    def RetrieveAndRerank(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._handle("RetrieveAndRerank", request, context)

    # --- plumbing -----------------------------------------------------------------------------------
    def _handle(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            response, elapsed = self.execute(method, request, context)
        except ServiceError as exc:
            if exc.field:
                context.set_trailing_metadata(((FIELD_METADATA, exc.field),))
            context.abort(exc.status.grpc, exc.message)
        context.set_trailing_metadata(((SERVER_TIME_METADATA, f"{elapsed * 1000.0:.3f}"),))
        return response

    def execute(self, method: str, request: Any, context: Any, label: str | None = None) -> tuple[Any, float]:
        """Run one call of any face: the handler of RPC ``method`` on a request message (``context`` needs
        ``time_remaining()`` and ``add_callback()``), counted in the metrics under ``label`` (default
        ``method``). Returns the response and the seconds spent; any failure is raised as a
        :class:`ServiceError` with its status from the one table (:mod:`.errors`)."""
        t0 = time.perf_counter()
        self.metrics.inflight.inc()
        status: Status = OK
        try:
            with self.inflight:
                return self.handlers[method](request, context), time.perf_counter() - t0
        except Exception as exc:
            status, message, field = status_of(exc)
            raise ServiceError(status, message, field) from exc
        finally:
            self.metrics.inflight.dec()
            self.metrics.request(label or method, status.grpc.name, time.perf_counter() - t0)

    @staticmethod
    def _ticket(context: grpc.ServicerContext) -> Ticket:
        remaining = context.time_remaining()
        deadline = None
        if remaining is not None and remaining < _NO_DEADLINE_S:
            deadline = time.monotonic() + remaining
        ticket = Ticket(deadline)
        if not context.add_callback(ticket.cancel):
            ticket.cancel()  # the RPC has already ended
        return ticket

    def _served(self, names: Sequence[str], field: str) -> list[ServedModel]:
        if not names:
            return [self.models[self.default_model]]
        out: list[ServedModel] = []
        for i, name in enumerate(names):
            where = f"{field}[{i}]" if field == "models" else field
            if name not in self.models:
                known = ", ".join(self.models)
                raise RequestError(where, f"unknown model {name!r}; served: {known}")
            if any(s.name == name for s in out):
                raise RequestError(where, f"model {name!r} named twice")
            out.append(self.models[name])
        return out

    @staticmethod
    def _options(msg: Any | None) -> RankOptions:
        """The request's options; the budget and sampler parameters are checked by ``validate_options``."""
        if msg is None:
            return _DEFAULTS
        which = msg.WhichOneof("budget")
        budget: int | float | None = None
        if which == "comparisons":
            budget = int(msg.comparisons)
        elif which == "fraction":
            if not (0.0 < msg.fraction <= 1.0):
                raise RequestError("options.fraction", f"must be in (0, 1], got {msg.fraction}")
            budget = float(msg.fraction)

        def optional(name: str) -> Any:
            return getattr(msg, name) if msg.HasField(name) else getattr(_DEFAULTS, name)

        return RankOptions(
            sampler=msg.sampler or _DEFAULTS.sampler,
            budget=budget,
            aggregator=msg.aggregator or _DEFAULTS.aggregator,
            calibration=msg.calibration or _DEFAULTS.calibration,
            fusion=msg.fusion or _DEFAULTS.fusion,
            seed=int(msg.seed),
            time_budget_ms=float(msg.time_budget_ms) if msg.time_budget_ms else None,
            both_orders=optional("both_orders"),
            prior_weight=optional("prior_weight"),
            window=optional("window"),
            skip=optional("skip"),
            sampler_top_n=optional("sampler_top_n"),
            rounds=optional("rounds"),
        )

    @staticmethod
    def _budget_field(msg: Any | None) -> str:
        """The request field a budget error names: ``options.comparisons`` or ``options.fraction``."""
        which = msg.WhichOneof("budget") if msg is not None else None
        return f"options.{which}" if which else "options.budget"

    @staticmethod
    def _pipeline_deadline(ticket: Ticket, options: RankOptions) -> float | None:
        """When sampling must stop. Anytime mode (a time budget) stops a little before the caller's
        deadline, so the partial ranking still reaches the caller; otherwise at the deadline itself."""
        if ticket.deadline is None or options.time_budget_ms is None:
            return ticket.deadline
        remaining = max(0.0, ticket.deadline - time.monotonic())
        margin = min(max(0.1 * remaining, 0.005), 0.25)
        return ticket.deadline - margin

    # --- Rerank -------------------------------------------------------------------------------------
    def _check_size(self, n: int, field: str, what: str) -> None:
        limit = self.config.max_candidates
        if n > limit:
            raise ServiceError(
                TOO_LARGE,
                f"{field}: {n} {what} exceed the limit of {limit} (max_candidates); split the request",
                field,
            )

    def _rerank(self, request: Any, context: grpc.ServicerContext) -> Any:
        n = len(request.candidates)
        self.metrics.candidates.observe(n)
        self._check_size(n, "candidates", "candidates")
        stages = list(request.options.stages) if request.HasField("options") else []
        if stages and request.models:
            raise RequestError("models", "give either models or options.stages (a cascade), not both")
        served = self._served([st.model for st in stages] or list(request.models), "models")
        for i, st in enumerate(stages):
            if st.depth < 1:
                raise RequestError(f"options.stages[{i}].depth", f"must be >= 1, got {st.depth}")
        candidates = [
            Candidate(c.id, c.text, c.score if c.HasField("score") else None) for c in request.candidates
        ]
        msg = request.options if request.HasField("options") else None
        options = self._options(msg)
        self._check_score_format(request.score_format)
        validate_candidates(request.query, candidates)
        validate_options(options, n, budget_field=self._budget_field(msg))
        for s in served:
            check_text(request.query, "query", s.max_chars, s.name)
            limit = s.max_chars if s.max_chars is not None else math.inf
            for i, c in enumerate(candidates):
                if len(c.text) > limit or not c.text.strip():  # the message is built only for a bad one
                    check_text(c.text, f"candidates[{i}].text", s.max_chars, s.name)
        ticket = self._ticket(context)
        depths = [int(st.depth) for st in stages]
        out = self._rank(ticket, request.query, candidates, served, options, request.top_n, depths)
        scores = self._scores(out, options, n, request.score_format)
        # filled in place: a message passed to a constructor is copied
        response = self.pb2.RerankResponse(models=[s.name for s in served])
        add = response.results.add
        for r in out.results:
            item = add(id=r.id, index=r.index, **scores(r))
            if request.return_text:
                item.text = request.candidates[r.index].text
        _fill_usage(response.usage, out)
        return response

    def _rank(
        self,
        ticket: Ticket,
        query: str,
        candidates: list[Candidate],
        served: list[ServedModel],
        options: RankOptions,
        top_n: int,
        depths: Sequence[int] = (),
    ) -> RerankResult:
        """Rank checked candidates over the models' schedulers (a cascade when ``depths`` gives each served
        model's stage depth); map a cancelled or expired request to its status (a time budget makes an
        expired one a partial answer instead)."""
        ticket.check()
        deadline = self._pipeline_deadline(ticket, options)
        with ExitStack() as stack:
            comparators = [stack.enter_context(s.scheduler.attached(ticket)) for s in served]
            if depths:
                stages = [Stage(c, d, s.name) for c, d, s in zip(comparators, depths, served, strict=True)]
                out = rerank_cascade(query, candidates, stages, options, top_n=top_n or None, deadline=deadline)
            else:
                out = rerank(query, candidates, comparators, options, top_n=top_n or None, deadline=deadline)
        if ticket.cancelled:
            ticket.check()  # DEADLINE_EXCEEDED when the deadline ended the RPC, else CANCELLED
            raise RequestCancelledError("request cancelled")
        if out.usage.partial:
            if options.time_budget_ms is None:
                raise DeadlineExpiredError("deadline exceeded before the ranking was complete")
            self.metrics.partial.inc()
        return out

    def _check_score_format(self, value: int) -> None:
        """proto3 enums are open: an unknown number arrives as itself and must be refused, not read as RAW."""
        known = self.pb2.ScoreFormat.values()
        if value not in known:
            names = ", ".join(f"{self.pb2.ScoreFormat.Name(v)} ({v})" for v in known)
            raise RequestError("score_format", f"unknown value {value}; known: {names}")

    def _scores(
        self, out: RerankResult, options: RankOptions, n: int, score_format: int
    ) -> Callable[[Any], dict[str, float]]:
        """A function from a pipeline result to its ``score`` (and ``stderr``) fields in ``score_format``."""
        low, span = 0.0, 1.0
        normalized = score_format == self.pb2.SCORE_FORMAT_NORMALIZED
        if normalized:
            scores = _all_scores(out, options, n)
            low = float(np.min(scores))
            span = float(np.max(scores)) - low

        def fields_of(r: Any) -> dict[str, float]:
            item: dict[str, float] = {}
            if normalized:
                item["score"] = (r.score - low) / span if span > 0 else 1.0
                if r.stderr is not None and math.isfinite(r.stderr):
                    item["stderr"] = r.stderr / span if span > 0 else 0.0
            else:
                item["score"] = r.score
                if r.stderr is not None and math.isfinite(r.stderr):
                    item["stderr"] = r.stderr
            return item

        return fields_of

    # --- RetrieveAndRerank --------------------------------------------------------------------------
    def _retrieve_and_rerank(self, request: Any, context: grpc.ServicerContext) -> Any:
        if self.index is None:
            raise ServiceError(
                NO_INDEX,
                "this server has no index: start it with `rerank serve --index DIR` to use RetrieveAndRerank",
            )
        k = int(request.k) or min(DEFAULT_RETRIEVE_K, self.config.max_candidates)
        self._check_size(k, "k", "documents")
        served = self._served(list(request.models), "models")
        msg = request.options if request.HasField("options") else None
        if msg is not None and msg.stages:
            raise RequestError("options.stages", "cascades are served by Rerank only")
        options = self._options(msg)
        self._check_score_format(request.score_format)
        for s in served:
            check_text(request.query, "query", s.max_chars, s.name)
        validate_options(options, k, budget_field=self._budget_field(msg))  # names and budget, before any work
        ticket = self._ticket(context)
        t0 = time.perf_counter()
        hits = self.index.search([request.query], k)[0]
        retrieval_ms = (time.perf_counter() - t0) * 1000.0
        self.metrics.candidates.observe(len(hits))
        pb2 = self.pb2
        if not hits:
            usage = pb2.Usage(elapsed_ms=0.0)
            return pb2.RetrieveAndRerankResponse(
                usage=usage, models=[s.name for s in served], retrieved=0, retrieval_ms=retrieval_ms
            )
        limit = min((s.max_chars for s in served if s.max_chars is not None), default=None)
        candidates = [Candidate(h.docid, h.text[:limit] if limit else h.text, h.score) for h in hits]
        out = self._rank(ticket, request.query, candidates, served, options, request.top_n)
        scores = self._scores(out, options, len(hits), request.score_format)
        response = pb2.RetrieveAndRerankResponse(
            models=[s.name for s in served], retrieved=len(hits), retrieval_ms=retrieval_ms
        )
        add = response.results.add
        for r in out.results:
            hit = hits[r.index]
            add(
                id=hit.docid,
                text=hit.text,
                retrieval_rank=r.index,
                retrieval_score=hit.score,
                metadata=_string_map(hit.metadata),
                **scores(r),
            )
        _fill_usage(response.usage, out)
        return response

    # --- Compare ------------------------------------------------------------------------------------
    def _compare(self, request: Any, context: grpc.ServicerContext) -> Any:
        served = self._served([request.model] if request.model else [], "model")[0]
        n = len(request.items)
        if n == 0:
            raise RequestError("items", "must not be empty")
        limit = self.config.max_queue_items
        if n > limit:
            raise ServiceError(
                TOO_LARGE,
                f"items: {n} items exceed the limit of {limit} (max_queue_items); split the request",
                "items",
            )
        items = []
        for i, it in enumerate(request.items):
            for name in ("query", "a", "b"):
                check_text(getattr(it, name), f"items[{i}].{name}", served.max_chars, served.name)
            items.append((it.query, it.a, it.b))
        ticket = self._ticket(context)
        with served.scheduler.attached(ticket) as comparator:
            p = comparator.compare_batch(items).p
        return self.pb2.CompareResponse(p=[float(x) for x in p], model=served.name)

    # --- ListModels ---------------------------------------------------------------------------------
    def _list_models(self, request: Any, context: grpc.ServicerContext) -> Any:
        pb2 = self.pb2
        order = [self.default_model] + [n for n in self.models if n != self.default_model]
        infos = []
        for name in order:
            s = self.models[name]
            infos.append(
                pb2.ModelInfo(
                    name=s.name,
                    kind=s.kind,
                    provider=s.provider,
                    max_query_tokens=s.max_query_tokens,
                    max_passage_tokens=s.max_passage_tokens,
                    max_chars=s.max_chars or 0,
                    max_batch_items=s.scheduler.max_batch_items,
                    is_default=name == self.default_model,
                )
            )
        index = None
        if self.index is not None:
            index = pb2.IndexInfo(
                name=Path(self.index.path).name,
                index_type=self.index.index_type,
                count=self.index.count,
                dim=self.index.dim,
                model=self.index.manifest.model.name,
                device=self.index.device,
            )
        return pb2.ListModelsResponse(models=infos, max_candidates=self.config.max_candidates, index=index)


_USAGE_FIELDS = tuple(f.name for f in fields(Usage))  # pipeline.Usage and the proto's Usage share them


def _fill_usage(message: Any, out: RerankResult) -> None:
    """Copy the pipeline's usage into the response's ``usage`` message."""
    usage = out.usage
    for name in _USAGE_FIELDS:
        setattr(message, name, getattr(usage, name))
    add = message.stages.add
    for stage in out.stages:
        add(model=stage.model, depth=stage.depth, comparisons=stage.comparisons, pointwise=stage.pointwise,
            elapsed_ms=stage.elapsed_ms)


def _string_map(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Stored metadata as proto ``map<string, string>``: strings as they are, anything else as JSON."""
    return {str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in metadata.items()}


def _all_scores(out: RerankResult, options: RankOptions, n: int) -> np.ndarray:
    """Scores of every candidate (not only the top_n returned), for normalisation."""
    if out.stages:  # a cascade's scores are rank-based: n - position
        return np.arange(1, n + 1, dtype=np.float64)
    if len(out.per_model) == 1:
        return np.asarray(out.per_model[0].scores, dtype=np.float64)
    fused = lookup("fusion", options.fusion)([r.order for r in out.per_model], n)
    return np.asarray(fused.scores, dtype=np.float64)
