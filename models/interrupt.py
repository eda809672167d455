"""Abandoning a model call between backend calls.

A caller that may give up on a call while it runs (a server whose requests waiting for the call were all
cancelled, expired or cut at shutdown) runs it under :func:`abandon_when`; ``PairwiseModel.run`` checks the
predicate before each backend call and raises :class:`CallAbandonedError` when it holds. The predicate lives in
a context variable, so it belongs to the thread (or task) that runs the call; a call made outside
:func:`abandon_when` is never abandoned. A backend call already running finishes (one sequence on CPU).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ABANDON: ContextVar[Callable[[], bool] | None] = ContextVar("rerank_model_abandon", default=None)


class CallAbandonedError(RuntimeError):
    """The caller gave up on the model call (:func:`abandon_when`); its answers were not computed."""


@contextmanager
def abandon_when(give_up: Callable[[], bool]) -> Iterator[None]:
    """Model calls made inside stop before their next backend call once ``give_up()`` is true."""
    token = _ABANDON.set(give_up)
    try:
        yield
    finally:
        _ABANDON.reset(token)


def check_abandoned() -> None:
    """Raise :class:`CallAbandonedError` when the current call's caller gave up (cheap: one call)."""
    give_up = _ABANDON.get()
    if give_up is not None and give_up():
        raise CallAbandonedError("model call abandoned: every request waiting for it is over")
