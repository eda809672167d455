"""One table from failures to statuses, shared by the gRPC and the HTTP face.

Every failure a request can meet maps to a :class:`Status`: a gRPC status code and an HTTP status, chosen
together in :data:`RULES` (first matching class wins), so both faces answer the same failure alike. The
HTTP statuses follow Google's canonical gRPC-to-HTTP mapping, except that a request over a size limit
(``max_candidates``, ``max_queue_items`` for Compare, the body size) is 413, not 429: 429 is kept for load
(a full queue, too many requests at once), which a client may retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from ..models.errors import EmptyTextError, ModelError, TextTooLongError
from ..request import RequestError, TooLargeError
from ..retrieval.errors import IndexClosedError, RetrievalError
from .scheduler import DeadlineExpiredError, QueueFullError, RequestCancelledError, SchedulerStoppedError

log = logging.getLogger("rerank.server")


@dataclass(frozen=True)
class Status:
    """How one kind of failure (or success) is answered on each face."""

    grpc: grpc.StatusCode
    http: int


OK = Status(grpc.StatusCode.OK, 200)
INVALID_ARGUMENT = Status(grpc.StatusCode.INVALID_ARGUMENT, 400)
UNAUTHENTICATED = Status(grpc.StatusCode.UNAUTHENTICATED, 401)
NO_INDEX = Status(grpc.StatusCode.FAILED_PRECONDITION, 404)  # RetrieveAndRerank on a server without one
TOO_LARGE = Status(grpc.StatusCode.RESOURCE_EXHAUSTED, 413)  # over a per-request size limit
OVERLOADED = Status(grpc.StatusCode.RESOURCE_EXHAUSTED, 429)  # queue full, too many requests at once
CANCELLED = Status(grpc.StatusCode.CANCELLED, 499)  # the caller went away (nginx's code)
INTERNAL = Status(grpc.StatusCode.INTERNAL, 500)
UNAVAILABLE = Status(grpc.StatusCode.UNAVAILABLE, 503)
DEADLINE_EXCEEDED = Status(grpc.StatusCode.DEADLINE_EXCEEDED, 504)


class ServiceError(Exception):
    """A failure with its status; ``field`` names the offending request field, if any."""

    def __init__(self, status: Status, message: str, field: str | None = None) -> None:
        self.status = status
        self.message = message
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Rule:
    """Failures of class ``error`` (for which ``applies(exc)``) answer ``status`` with ``message(exc)``;
    ``logged`` ones are logged."""

    error: type[BaseException]
    status: Status
    message: Callable[[BaseException], str] = str
    logged: bool = False
    applies: Callable[[BaseException], bool] = lambda _: True


RULES: tuple[Rule, ...] = (
    Rule(TooLargeError, TOO_LARGE),
    Rule(RequestError, INVALID_ARGUMENT),
    # a round larger than the whole queue can never be admitted: a size limit (413), not load (429)
    Rule(QueueFullError, TOO_LARGE, applies=lambda e: not getattr(e, "retryable", True)),
    Rule(QueueFullError, OVERLOADED),
    Rule(DeadlineExpiredError, DEADLINE_EXCEEDED),
    Rule(RequestCancelledError, CANCELLED),
    Rule(SchedulerStoppedError, UNAVAILABLE),
    Rule(EmptyTextError, INVALID_ARGUMENT),
    Rule(TextTooLongError, INVALID_ARGUMENT),
    Rule(IndexClosedError, UNAVAILABLE, lambda _: "server shutting down (index closed)"),
    Rule(RetrievalError, INTERNAL, lambda e: f"index error: {e}", logged=True),
    Rule(ModelError, INTERNAL, lambda e: f"model error: {e}", logged=True),
)


def status_of(exc: BaseException) -> tuple[Status, str, str | None]:
    """The status, message and field a failure maps to (anything unknown: INTERNAL, logged with its
    traceback)."""
    if isinstance(exc, ServiceError):
        return exc.status, exc.message, exc.field
    for rule in RULES:
        if isinstance(exc, rule.error) and rule.applies(exc):
            message = rule.message(exc)
            if rule.logged:
                log.error("%s", message)
            return rule.status, message, getattr(exc, "field", None)
    log.exception("unexpected error", exc_info=exc)
    return INTERNAL, f"internal error ({type(exc).__name__})", None
