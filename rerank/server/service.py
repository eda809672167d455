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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from ..pipeline import RerankResult, model_traits, run
from ..request import (
    GRPC_NAMES,
    Candidate,
    Checked,
    FieldNames,
    Limits,
    RankOptions,
    RequestError,
    RerankRequest,
    TooLargeError,
    check_text,
    resolve_models,
    validate,
    validate_ranking_options,
)
from ..wire import fill_usage, options_from_fields, request_from_message, set_fields
from .config import ServerConfig
from .errors import NO_INDEX, OK, OVERLOADED, TOO_LARGE, ServiceError, Status, status_of
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
    """The calls being handled by either face: :meth:`admit` lets in at most ``limit`` at once (one limit
    across gRPC and HTTP), :meth:`release` ends one, :meth:`wait_idle` blocks until none is left."""

    def __init__(self, limit: int | None = None) -> None:
        self._cond = threading.Condition()
        self.limit = limit
        self.count = 0

    def admit(self) -> bool:
        with self._cond:
            if self.limit is not None and self.count >= self.limit:
                return False
            self.count += 1
            return True

    def release(self) -> None:
        with self._cond:
            self.count -= 1
            if self.count == 0:
                self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.count == 0, timeout)


@dataclass(frozen=True)
class RankCall:
    """A face's ranking call: the request object, the face's field names, the score format and whether
    to echo the texts."""

    request: RerankRequest
    names: FieldNames
    score_format: int = 0
    return_text: bool = False


@dataclass(frozen=True)
class RetrieveCall:
    """A face's RetrieveAndRerank call: the request message and the face's field names."""

    message: Any
    names: FieldNames = GRPC_NAMES


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
            "RankRequest": self._rank_request,
        }
        self.inflight = InFlight(config.max_concurrent_rpcs)

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
            if not self.inflight.admit():
                raise ServiceError(
                    OVERLOADED,
                    f"more than {self.inflight.limit} requests at once across gRPC and HTTP "
                    "(max_concurrent_rpcs); retry later",
                )
            try:
                return self.handlers[method](request, context), time.perf_counter() - t0
            finally:
                self.inflight.release()
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

    @property
    def limits(self) -> Limits:
        """What a request may ask of this server: its models, the default, max_candidates, max_chars."""
        return Limits(
            models=tuple(self.models),
            default_model=self.default_model,
            max_candidates=self.config.max_candidates,
            max_chars={name: s.max_chars for name, s in self.models.items()},
            **model_traits({name: s.model for name, s in self.models.items()}),
        )

    @staticmethod
    def _pipeline_deadline(ticket: Ticket, options: RankOptions) -> float | None:
        """When sampling must stop. Anytime mode (a time budget) stops a little before the caller's
        deadline, so the partial ranking still reaches the caller; otherwise at the deadline itself."""
        if ticket.deadline is None or options.time_budget_ms is None:
            return ticket.deadline
        remaining = max(0.0, ticket.deadline - time.monotonic())
        margin = min(max(0.1 * remaining, 0.005), 0.25)
        return ticket.deadline - margin

    @staticmethod
    def warm_up_path() -> float:
        """One small request through the engine's whole default path (validation, sampler, calibration,
        aggregation with scipy, fusion-free scores with the isotonic fit) with a stand-in comparator, before
        the server says it is ready: the first real request pays no import or first-run cost. It touches no
        served model (their warm-up is :func:`~rerank.server.app.warm_up`), so it cannot hang on one, and it
        is not counted as a request. Returns the seconds spent."""
        t0 = time.perf_counter()
        candidates = tuple(Candidate(str(i), f"warm-up passage {i}") for i in range(4))
        run(RerankRequest("warm-up query", candidates, absolute_scores=True), {"warm-up": _WarmUpComparator()})
        return time.perf_counter() - t0

    # --- Rerank -------------------------------------------------------------------------------------
    def _rerank(self, message: Any, context: grpc.ServicerContext) -> Any:
        request = request_from_message(message)
        return self._rank_request(RankCall(request, GRPC_NAMES, message.score_format, message.return_text), context)

    def _rank_request(self, call: RankCall, context: Any) -> Any:
        """Any face's :class:`RerankRequest`: validated once (:func:`rerank.request.validate`), errors named
        in the face's fields (``call.names``), ranked over the schedulers; a ``RerankResponse``."""
        normalized = call.score_format == self.pb2.SCORE_FORMAT_NORMALIZED
        request = replace(call.request, absolute_scores=normalized)
        self.metrics.candidates.observe(len(request.candidates))
        try:
            self._check_score_format(call.score_format)
            checked = validate(request, self.limits)
        except RequestError as exc:
            raise call.names.error(exc, request) from None
        out = self._rank(self._ticket(context), request, checked)
        scores = self._scores(out, call.score_format)
        # filled in place: a message passed to a constructor is copied
        response = self.pb2.RerankResponse(models=list(dict.fromkeys(checked.models)))
        add = response.results.add
        for r in out.results:
            item = add(id=r.id, index=r.index, **scores(r))
            if call.return_text:
                item.text = request.candidates[r.index].text
        fill_usage(response.usage, out.usage)
        return response

    def _rank(self, ticket: Ticket, request: RerankRequest, checked: Checked) -> RerankResult:
        """Rank a checked request over its models' schedulers (each model attached once, whatever the
        stages that use it); map a cancelled or expired request to its status (a time budget makes an
        expired one a partial answer instead)."""
        ticket.check()
        deadline = self._pipeline_deadline(ticket, request.options)
        with ExitStack() as stack:
            comparators = {
                name: stack.enter_context(self.models[name].scheduler.attached(ticket))
                for name in dict.fromkeys(checked.models)
            }
            out = run(request, comparators, checked=checked, deadline=deadline)
        if ticket.cancelled:
            ticket.check()  # DEADLINE_EXCEEDED when the deadline ended the RPC, else CANCELLED
            raise RequestCancelledError("request cancelled")
        if out.usage.partial:
            if request.options.time_budget_ms is None:
                raise DeadlineExpiredError("deadline exceeded before the ranking was complete")
            self.metrics.partial.inc()
        return out

    def _check_score_format(self, value: int) -> None:
        """proto3 enums are open: an unknown number arrives as itself and must be refused, not read as RAW."""
        known = self.pb2.ScoreFormat.values()
        if value not in known:
            names = ", ".join(f"{self.pb2.ScoreFormat.Name(v)} ({v})" for v in known)
            raise RequestError("score_format", f"unknown value {value}; known: {names}")

    def _scores(self, out: RerankResult, score_format: int) -> Callable[[Any], dict[str, float]]:
        """A function from a pipeline result to its ``score`` (and ``stderr``) fields in ``score_format``:
        raw, the latent scores (and their stderr); normalized, scores a threshold can use
        (:mod:`rerank.scores`, no stderr)."""
        absolute = out.absolute if score_format == self.pb2.SCORE_FORMAT_NORMALIZED else None

        def fields_of(r: Any) -> dict[str, float]:
            if absolute is not None:
                return {"score": float(absolute[r.index])}
            item = {"score": r.score}
            if r.stderr is not None and math.isfinite(r.stderr):
                item["stderr"] = r.stderr
            return item

        return fields_of

    # --- RetrieveAndRerank --------------------------------------------------------------------------
    def _retrieve_and_rerank(self, message: Any, context: grpc.ServicerContext) -> Any:
        call = message if isinstance(message, RetrieveCall) else RetrieveCall(message)
        message, names = call.message, call.names
        if self.index is None:
            raise ServiceError(
                NO_INDEX,
                "this server has no index: start it with `rerank serve --index DIR` to use RetrieveAndRerank",
            )
        limit = self.config.max_candidates
        k = int(message.k) or min(DEFAULT_RETRIEVE_K, limit)
        if k > limit:
            raise TooLargeError("k", f"{k} exceeds the limit of k, {limit} (max_candidates)")
        options, stages = options_from_fields(set_fields(message.options)) if message.HasField("options") else (
            RankOptions(), ())
        if stages:
            raise names.error(RequestError("stages", "cascades are served by Rerank only"))
        # everything but the candidates is checked before any work (names, budget against k, query)
        probe = RerankRequest(message.query, (), tuple(message.models), (), options, int(message.top_n))
        try:
            self._check_score_format(message.score_format)
            models = resolve_models(probe, self.limits)
            for name in models:
                check_text(message.query, "query", self.models[name].max_chars, name)
            validate_ranking_options(probe, models, self.limits, k)
        except RequestError as exc:
            raise names.error(exc, probe) from None
        ticket = self._ticket(context)
        t0 = time.perf_counter()
        hits = self.index.search([message.query], k)[0]
        retrieval_ms = (time.perf_counter() - t0) * 1000.0
        self.metrics.candidates.observe(len(hits))
        pb2 = self.pb2
        if not hits:
            return pb2.RetrieveAndRerankResponse(
                usage=pb2.Usage(elapsed_ms=0.0), models=list(models), retrieved=0, retrieval_ms=retrieval_ms
            )
        chars = min((c for n in models if (c := self.models[n].max_chars) is not None), default=None)
        candidates = tuple(Candidate(h.docid, h.text[:chars] if chars else h.text, h.score) for h in hits)
        normalized = message.score_format == self.pb2.SCORE_FORMAT_NORMALIZED
        request = RerankRequest(message.query, candidates, models, (), options, int(message.top_n), normalized)
        try:
            checked = validate(request, self.limits)
        except RequestError as exc:
            raise names.error(exc, request) from None
        out = self._rank(ticket, request, checked)
        scores = self._scores(out, message.score_format)
        response = pb2.RetrieveAndRerankResponse(models=list(models), retrieved=len(hits), retrieval_ms=retrieval_ms)
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
        fill_usage(response.usage, out.usage)
        return response

    # --- Compare ------------------------------------------------------------------------------------
    def _compare(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            name = resolve_models(RerankRequest("", (), (request.model,) if request.model else ()), self.limits)[0]
        except RequestError as exc:
            raise exc.renamed("model") from None
        served = self.models[name]
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


class _WarmUpComparator:
    """A pointwise stand-in with an absolute scale, for :meth:`RerankerService.warm_up_path`."""

    kind = "bi-encoder"
    pointwise = True

    def compare_batch(self, items: Sequence[tuple[str, str, str]]) -> np.ndarray:
        return np.array([0.75 if a < b else 0.25 for _, a, b in items])

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        return np.linspace(0.9, 0.1, len(passages))


def _string_map(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Stored metadata as proto ``map<string, string>``: strings as they are, anything else as JSON."""
    return {str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in metadata.items()}
