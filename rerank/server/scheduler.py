"""Dynamic batching: comparisons of concurrent requests merged into model calls.

One :class:`BatchScheduler` per served model owns a worker thread and a FIFO queue of jobs (one job = one
``compare_batch`` call of one request, e.g. one sampling round). The worker takes jobs in arrival order,
up to ``max_batch_items`` comparisons per model call (a larger job is split over several calls), runs the
model once on the merged items and hands each job its slice of p.

When to run: a full ``max_batch_items`` runs at once. Otherwise, while requests in flight on this model have
no job queued yet (they are still being parsed, or aggregating between rounds), the batch waits for them up
to ``max_wait_s`` after its oldest job; when every request in flight is already queued it runs at once, so
a lone request pays no batching delay (and, when the model is idle, runs in its own thread without a
hand-off to the worker). ``linger_s`` (default 0) makes every batch wait at least that long
after its oldest job, which also catches requests that have not reached the server yet (bursts).

Overlap (``overlap=True``, for models with separate ``prepare`` / ``run`` / ``postprocess`` stages): the
worker only takes batches and tokenizes them; a second thread runs the model and postprocesses. A bounded
hand-off (one tokenized batch waiting) sits between them, so batch n+1 is tokenized while batch n runs and
tokenization never runs ahead of the model by more than one batch.

Streams (``streams > 1``, without overlap): up to ``streams`` model calls run at once on stream threads. The
worker splits a batch of several jobs over the streams that are free (whole jobs, about equal items: a
request's texts stay in one call) and goes back to the queue at once, so a stream that ends takes the next
batch without waiting for the others. One stream of short ONNX Runtime calls keeps two CPU cores less busy
than concurrent calls do (0.63 vs 0.87 cores for a burst of 8 under load, bench/results/ort_spinning.md).

Per-request state lives in a :class:`Ticket` (hard deadline, cancellation) and in the jobs; the scheduler
holds only the queue. A cancelled or expired request's queued items are dropped, so it stops consuming the
model; a model call whose requests are all over (cancelled, expired, or failed by
:meth:`BatchScheduler.stop`) is abandoned before its next backend call (:mod:`rerank.models.interrupt`), so a
big call of a request that went away does not hold the model for the next one. Requests see the scheduler
through :meth:`BatchScheduler.attached`, a comparator (``compare_batch``) that :func:`rerank.pipeline.rerank`
can drive like a model.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.interrupt import CallAbandonedError, abandon_when

log = logging.getLogger("rerank.server")

Item = tuple[str, str, str]
DEADLINE_SLACK_S = 0.01


class SchedulerError(Exception):
    """Base of the errors a request can get from the scheduler."""


class RequestCancelledError(SchedulerError):
    """The client cancelled the request (or it ended) while its comparisons were queued."""


class DeadlineExpiredError(SchedulerError):
    """The request's deadline passed before its comparisons were answered."""


class QueueFullError(SchedulerError):
    """Admitting the job would exceed ``max_queue_items`` pending comparisons (``retryable``), or the job
    alone is larger than the queue can ever hold (not ``retryable``)."""

    def __init__(self, pending: int, size: int, limit: int) -> None:
        self.limit = limit
        self.retryable = size <= limit
        if self.retryable:
            message = (
                f"queue full: {pending} comparisons pending + {size} requested exceed the limit of {limit} "
                "(max_queue_items); retry later"
            )
        else:
            message = (
                f"request too large: one round of {size} comparisons exceeds the queue limit of {limit} "
                "(max_queue_items), so retrying will not help; lower the budget or the candidates, or raise "
                "max_queue_items"
            )
        super().__init__(message)


class SchedulerStoppedError(SchedulerError):
    """The scheduler is shutting down."""


class Ticket:
    """One request's hard deadline (``time.monotonic``) and cancellation flag; shared with its jobs only."""

    __slots__ = ("_cancelled", "_jobs", "_lock", "deadline")

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self._cancelled = False
        self._lock = threading.Lock()
        self._jobs: set[_Job] = set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def expired(self, now: float | None = None) -> bool:
        return self.deadline is not None and (time.monotonic() if now is None else now) >= self.deadline

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def cancel(self) -> None:
        """Mark cancelled and wake the request's waiting jobs (safe from any thread, idempotent)."""
        with self._lock:
            self._cancelled = True
            jobs = list(self._jobs)
        for job in jobs:
            job.event.set()

    def by_deadline(self) -> bool:
        """Whether the request is over because of its deadline. gRPC ends (and so cancels) an RPC at its
        deadline, which this ticket computed from the same clock a few microseconds later: a cancellation
        within ``DEADLINE_SLACK_S`` of the deadline counts as the deadline."""
        return self.deadline is not None and time.monotonic() >= self.deadline - DEADLINE_SLACK_S

    def check(self) -> None:
        """Raise if the request is over: past its deadline (which also ends the RPC) or cancelled."""
        if self.expired() or (self._cancelled and self.by_deadline()):
            raise DeadlineExpiredError("deadline exceeded")
        if self._cancelled:
            raise RequestCancelledError("request cancelled")

    def _add(self, job: _Job) -> None:
        with self._lock:
            self._jobs.add(job)

    def _remove(self, job: _Job) -> None:
        with self._lock:
            self._jobs.discard(job)


class _Job:
    """One compare_batch call of one request: its items, the p filled in so far, and a done event."""

    __slots__ = ("done", "enqueued", "error", "event", "items", "next", "p", "pointwise", "stats", "ticket")

    def __init__(self, ticket: Ticket, items: list[Item], pointwise: bool = False) -> None:
        self.pointwise = pointwise  # items (query, passage, passage) answered by the model's per-passage score
        self.stats = JobStats()
        self.ticket = ticket
        self.items = items
        self.p = np.empty(len(items), dtype=np.float64)
        self.next = 0  # first item not yet taken into a batch
        self.done = 0  # items answered
        self.error: BaseException | None = None
        self.event = threading.Event()
        self.enqueued = time.monotonic()

    def dead(self, now: float) -> bool:
        return self.error is not None or self.ticket.cancelled or self.ticket.expired(now)


@dataclass
class JobStats:
    """One request's share of the model calls that answered it: ``queue_s`` from queueing to the start of
    the call that took its first item; tokenize and run (with postprocess) seconds of each merged call in
    proportion to the request's items in it; ``truncated_items`` its items whose p depends on a cut text."""

    truncated_items: int = 0
    tokens: float = 0.0  # the request's share of the calls' tokens
    tokenize_s: float = 0.0
    run_s: float = 0.0
    queue_s: float = 0.0
    started: bool = False

    def add(self, result: Any, start: int, stop: int, total: int) -> None:
        share = (stop - start) / total if total else 0.0
        stats = getattr(result, "stats", None)
        if stats is not None:
            self.tokenize_s += float(stats.tokenize_s) * share
            self.run_s += (float(stats.run_s) + float(stats.postprocess_s)) * share
            self.tokens += float(getattr(stats, "tokens", 0) or 0) * share
        cut = getattr(result, "truncated", None)
        if cut is not None:
            self.truncated_items += int(np.count_nonzero(cut[start:stop]))


@dataclass(frozen=True)
class RequestAnswer:
    """What ``BoundComparator.compare_batch`` returns: p and the request's ``JobStats``."""

    p: np.ndarray
    stats: JobStats

    def __array__(self, dtype=None, copy=None):
        return self.p if dtype is None else self.p.astype(dtype)

    def __len__(self) -> int:
        return len(self.p)

    def __getitem__(self, index):
        return self.p[index]


@dataclass(frozen=True)
class BatchRecord:
    """What one model call merged (for metrics and tests)."""

    items: int
    jobs: int
    requests: int
    seconds: float


class SchedulerMetrics:
    """Hooks the scheduler calls; the default does nothing (see ``rerank.server.metrics``)."""

    def batch(self, model: str, record: BatchRecord) -> None: ...

    def queue_depth(self, model: str, items: int) -> None: ...

    def dropped(self, model: str, items: int, reason: str) -> None: ...


class BatchScheduler:
    """Merges ``compare_batch`` calls of concurrent requests into model calls on one worker thread."""

    def __init__(
        self,
        model: Any,
        name: str,
        *,
        max_batch_items: int = 16384,
        max_wait_s: float = 0.005,
        max_queue_items: int = 2_000_000,
        linger_s: float = 0.0,
        metrics: SchedulerMetrics | None = None,
        overlap: bool = False,
        streams: int = 1,
    ) -> None:
        if max_batch_items < 1:
            raise ValueError(f"max_batch_items must be >= 1, got {max_batch_items}")
        if max_queue_items < 1:
            raise ValueError(f"max_queue_items must be >= 1, got {max_queue_items}")
        if streams < 1:
            raise ValueError(f"streams must be >= 1, got {streams}")
        if max_wait_s < 0 or linger_s < 0:
            raise ValueError(f"max_wait_s and linger_s must be >= 0, got {max_wait_s}, {linger_s}")
        self.model = model
        self.name = name
        self.max_batch_items = int(max_batch_items)
        self.max_wait_s = float(max_wait_s)
        self.max_queue_items = int(max_queue_items)
        self.linger_s = float(linger_s)
        self.metrics = metrics or SchedulerMetrics()
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._pending = 0  # items queued and not yet taken
        self._attached = 0  # requests in flight that may submit to this model
        self._running = False
        self._busy = False  # the model is running a call (worker or inline)
        self._thread: threading.Thread | None = None
        # overlap: tokenize on the worker, run on a second thread, one tokenized batch in between
        self.overlap = bool(overlap) and all(hasattr(model, m) for m in ("prepare", "run", "postprocess"))
        self._handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._running_batch = False  # the run thread holds a batch (overlap only)
        self._runner: threading.Thread | None = None
        self._current: list[_Job] = []  # jobs in the worker's model call now running
        self._inline: set[_Job] = set()  # jobs whose model call runs on their request's thread
        self.streams = 1 if self.overlap else int(streams)
        self._streams = (
            ThreadPoolExecutor(self.streams, thread_name_prefix=f"rerank-stream-{name}") if self.streams > 1 else None
        )
        self._active = 0  # calls running on the stream threads
        self._in_streams: list[_Job] = []  # their jobs
        self._stop_reason = "server shutting down"
        self.calls = 0  # model calls made (monotonic counters, for metrics and tests)
        self.items = 0

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._work, name=f"rerank-batcher-{self.name}", daemon=True)
        self._thread.start()
        if self.overlap:
            self._runner = threading.Thread(target=self._run_stage, name=f"rerank-run-{self.name}", daemon=True)
            self._runner.start()

    def stop(self, timeout: float | None = None, reason: str = "server shutting down") -> None:
        """Refuse new jobs, fail every job still waiting (queued, or in the model call now running) with
        :class:`SchedulerStoppedError` at once, then wait for that model call to end (``timeout`` None:
        however long it takes, so that no model call is left running when the process exits)."""
        with self._cond:
            self._running = False
            self._stop_reason = reason
            waiting = list(self._queue) + self._current + self._in_streams + list(self._inline)
            self._queue.clear()
            self._pending = 0
            self._cond.notify_all()
        for job in waiting:
            if job.error is None and job.done < len(job.items):
                job.error = SchedulerStoppedError(reason)
                job.event.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._runner is not None:
            self._runner.join(timeout)
        if self._streams is not None:
            self._streams.shutdown(wait=timeout is None)

    def wait_calls(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no model call runs (on the worker, the run thread, a stream
        or a request thread); True when none does."""
        with self._cond:
            idle = self._cond.wait_for(
                lambda: not (self._busy or self._active or self._running_batch or self._inline), timeout
            )
        return idle and not any(t is not None and t.is_alive() for t in (self._thread, self._runner))

    @property
    def queue_depth(self) -> int:
        """Comparisons queued and not yet taken into a model call."""
        return self._pending

    # --- request side -------------------------------------------------------------------------------
    @contextmanager
    def attached(self, ticket: Ticket) -> Iterator[BoundComparator]:
        """Count the request as in flight on this model for its lifetime; yield its comparator."""
        with self._cond:
            self._attached += 1
        try:
            yield BoundComparator(self, ticket)
        finally:
            with self._cond:
                self._attached -= 1
                if self._queue:  # the worker may be waiting for this request to queue its job
                    self._cond.notify_all()

    def submit(self, ticket: Ticket, items: Sequence[Item], *, pointwise: bool = False) -> RequestAnswer:
        """Queue ``items`` for ``ticket``'s request and block until answered; p as float64 with the
        request's share of the calls' stats. ``pointwise``: items are ``(query, passage, passage)`` and the
        answer is each passage's score (a pointwise cascade stage), under the same queue limit, streams,
        batching (with other requests' score jobs) and metrics as comparisons."""
        ticket.check()
        if not items:
            return RequestAnswer(np.zeros(0, dtype=np.float64), JobStats())
        job = _Job(ticket, list(items), pointwise)
        n = len(job.items)
        with self._cond:
            if not self._running:
                raise SchedulerStoppedError(self._stop_reason)
            if self._pending + n > self.max_queue_items:
                raise QueueFullError(self._pending, n, self.max_queue_items)
            # fast path: the model is idle, nothing is queued and no other request is in flight here, so
            # there is nobody to batch with: run in this thread and skip two thread hand-offs
            inline = (
                not self._busy
                and self._active == 0
                and not self._running_batch
                and self._handoff.empty()
                and not self._queue
                and self._attached <= 1
                and self.linger_s == 0
                and n <= self.max_batch_items
            )
            if inline:
                self._busy = True
                self._inline.add(job)
            else:
                self._queue.append(job)
                self._pending += n
                self.metrics.queue_depth(self.name, self._pending)
                self._cond.notify_all()
        if inline:
            return self._run_inline(job)
        ticket._add(job)
        if ticket.cancelled:  # cancelled before it could wake this job
            job.event.set()
        try:
            while True:
                remaining = ticket.remaining()
                finished = job.event.wait(None if remaining is None else max(0.0, remaining))
                if job.error is not None:
                    raise job.error
                if ticket.cancelled:
                    ticket.check()
                    raise RequestCancelledError("request cancelled")
                if job.done == n:
                    return RequestAnswer(job.p, job.stats)
                if finished or ticket.expired():
                    raise DeadlineExpiredError("deadline exceeded while waiting for the model")
                # the wait timed out a hair early: wait again
        except SchedulerError:
            self._withdraw(job)
            raise
        finally:
            ticket._remove(job)

    def _run_inline(self, job: _Job) -> RequestAnswer:
        items = job.items
        t0 = time.perf_counter()
        try:
            p, result = self._call(items, [job], job.pointwise)
            job.stats.add(result, 0, len(items), len(items))
        except CallAbandonedError:
            if job.error is not None:
                raise job.error from None
            job.ticket.check()
            raise SchedulerStoppedError(self._stop_reason) from None
        finally:
            with self._cond:
                self._busy = False
                self._inline.discard(job)
                self._cond.notify_all()  # queued jobs wait for the model to be free, a stop for the call to end
        self.metrics.batch(self.name, BatchRecord(len(items), 1, 1, time.perf_counter() - t0))
        return RequestAnswer(p, job.stats)

    def _withdraw(self, job: _Job) -> None:
        """Drop what is left of a job from the queue at once (it stops consuming the model)."""
        with self._cond:
            if job in self._queue:
                left = len(job.items) - job.next
                self._queue.remove(job)
                self._pending -= left
                job.next = len(job.items)
                self.metrics.queue_depth(self.name, self._pending)
                self.metrics.dropped(self.name, left, _reason(job))

    # --- worker -------------------------------------------------------------------------------------
    def _drop_dead(self, now: float) -> None:
        kept: deque[_Job] = deque()
        for job in self._queue:
            if job.dead(now):
                left = len(job.items) - job.next
                self._pending -= left
                job.next = len(job.items)
                self.metrics.dropped(self.name, left, _reason(job))
                job.event.set()
            else:
                kept.append(job)
        self._queue = kept

    def _next_batch(self) -> list[tuple[_Job, int, int]] | None:
        """Wait for work and take the next batch as (job, start, stop) slices; None when stopping."""
        with self._cond:
            while True:
                while self._running and (not self._queue or self._busy or self._active >= self.streams):
                    self._cond.wait()
                if not self._running:
                    return None
                oldest = self._queue[0].enqueued
                while self._running:
                    now = time.monotonic()
                    self._drop_dead(now)
                    if not self._queue or self._pending >= self.max_batch_items:
                        break
                    waiting = len({id(j.ticket) for j in self._queue})
                    expected = self._attached - waiting
                    wait_for_expected = oldest + self.max_wait_s - now if expected > 0 else 0.0
                    left = max(wait_for_expected, oldest + self.linger_s - now)
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._queue:
                    continue
                slices: list[tuple[_Job, int, int]] = []
                room = self.max_batch_items
                while self._queue and room > 0:
                    job = self._queue[0]
                    if slices and job.pointwise != slices[0][0].pointwise:
                        break  # one model call answers comparisons or scores, not both
                    take = min(room, len(job.items) - job.next)
                    slices.append((job, job.next, job.next + take))
                    job.next += take
                    room -= take
                    self._pending -= take
                    if job.next == len(job.items):
                        self._queue.popleft()
                self.metrics.queue_depth(self.name, self._pending)
                self._busy = True
                self._current = [job for job, _, _ in slices]
                return slices

    @staticmethod
    def _begin(slices: list[tuple[_Job, int, int]]) -> list[Item]:
        """The items of a batch's slices; each job's queue wait ends at its first batch."""
        began = time.monotonic()
        for job, _, _ in slices:
            if not job.stats.started:
                job.stats.started = True
                job.stats.queue_s = began - job.enqueued
        return [it for job, start, stop in slices for it in job.items[start:stop]]

    def _run(self, slices: list[tuple[_Job, int, int]]) -> None:
        """Run a batch: as one model call on this thread, or (streams) as calls of whole jobs on the free
        stream threads, returning at once."""
        if self._streams is None:
            self._run_call(slices)
            return
        with self._cond:
            groups = _split(slices, self.streams - self._active)
            self._active += len(groups)
            self._in_streams.extend(job for job, _, _ in slices)
        for i, group in enumerate(groups):
            try:
                self._streams.submit(self._stream_call, group)
            except RuntimeError:  # stop() shut the streams down after this batch was taken: fail it, quietly
                if self._running:
                    raise
                self._abandon(groups[i:])
                return

    def _abandon(self, groups: list[list[tuple[_Job, int, int]]]) -> None:
        """Groups no stream will run (the scheduler stopped): their jobs fail with :class:`SchedulerStoppedError`
        (those stop() has not failed yet) and leave the stream counts, so that ``wait_calls`` sees no call."""
        for group in groups:
            for job, _, _ in group:
                if job.error is None and job.done < len(job.items):
                    job.error = SchedulerStoppedError(self._stop_reason)
                job.event.set()
        self._leave_streams(groups)

    def _leave_streams(self, groups: list[list[tuple[_Job, int, int]]]) -> None:
        """Groups that ended on (or never reached) the stream threads leave the stream counts."""
        with self._cond:
            for group in groups:
                self._active -= 1
                for job, _, _ in group:
                    self._in_streams.remove(job)
            self._cond.notify_all()

    def _stream_call(self, slices: list[tuple[_Job, int, int]]) -> None:
        try:
            self._run_call(slices)
        except BaseException as exc:  # never leave jobs waiting
            log.exception("model call of %s failed", self.name)
            for job, _, _ in slices:
                job.error = job.error or exc
                job.event.set()
        finally:
            self._leave_streams([slices])

    def _run_call(self, slices: list[tuple[_Job, int, int]]) -> None:
        items = self._begin(slices)
        t0 = time.perf_counter()
        try:
            p, result = self._call(items, [job for job, _, _ in slices], slices[0][0].pointwise)
        except CallAbandonedError:  # every job is over: each waiting thread raises its own error
            for job, _, _ in slices:
                job.event.set()
            return
        except Exception as exc:  # isolate the failing request(s): rerun each job's slice alone
            if len({id(job) for job, _, _ in slices}) > 1:
                log.info("merged batch of %d items failed (%s); retrying per request", len(items), exc)
                for piece in slices:
                    self._run_call([piece])
                return
            job = slices[0][0]
            job.error = exc
            job.event.set()
            return
        self._deliver(slices, items, p, result, time.perf_counter() - t0)

    def _call(self, items: list[Item], jobs: list[_Job], pointwise: bool = False) -> tuple[np.ndarray, Any]:
        """One model call (per-passage scores when ``pointwise``), abandoned before its next backend call once
        every one of ``jobs`` is over."""
        with abandon_when(lambda: _all_over(jobs)):
            if pointwise:
                return self._answers(items, self._scores(items))
            return self._answers(items, self.model.compare_batch(items))

    def _scores(self, items: list[Item]) -> np.ndarray:
        """Per-passage scores of score items ``(query, passage, passage)``: one ``model.score`` per query."""
        out = np.empty(len(items), dtype=np.float64)
        rows: dict[str, list[int]] = {}
        for i, (query, _, _) in enumerate(items):
            rows.setdefault(query, []).append(i)
        for query, where in rows.items():
            out[where] = np.asarray(self.model.score(query, [items[i][1] for i in where]), dtype=np.float64)
        return out

    def _answers(self, items: list[Item], result: Any) -> tuple[np.ndarray, Any]:
        """The p of a model call's ``result`` (checked: one per item), counted in the call counters."""
        p = np.asarray(getattr(result, "p", result), dtype=np.float64).reshape(-1)
        if len(p) != len(items):
            raise RuntimeError(f"model {self.name!r} returned {len(p)} answers for {len(items)} items")
        self.calls += 1
        self.items += len(items)
        return p, result

    def _work(self) -> None:
        while True:
            slices = self._next_batch()
            if slices is None:
                if self.overlap:
                    self._handoff.put(None)
                return
            try:
                if self.overlap:
                    self._tokenize(slices)
                else:
                    self._run(slices)
            except BaseException as exc:  # never let the worker die with jobs waiting
                log.exception("batch worker of %s failed", self.name)
                for job, _, _ in slices:
                    if job.error is None:
                        job.error = exc
                    job.event.set()
            finally:
                with self._cond:
                    self._busy = False
                    self._current = []
                    self._cond.notify_all()


    # --- overlap: tokenize here, run on the run thread -------------------------------------------------
    def _tokenize(self, slices: list[tuple[_Job, int, int]]) -> None:
        """Tokenize a batch and hand it to the run thread (blocks while one tokenized batch waits); score
        jobs run here as one call."""
        if slices[0][0].pointwise:
            self._run_call(slices)
            return
        items = self._begin(slices)
        try:
            prepared = self.model.prepare(items)
        except Exception:  # the same isolation as a failing call: each job's slice alone, fully
            self._isolate(slices)
            return
        with self._cond:
            self._busy = False  # the worker may take the next batch while this one runs
            self._running_batch = True
            self._cond.notify_all()
        self._handoff.put((slices, items, prepared, time.perf_counter()))

    def _run_stage(self) -> None:
        while True:
            staged = self._handoff.get()
            if staged is None:
                return
            slices, items, prepared, t0 = staged
            try:
                with abandon_when(lambda: _all_over([job for job, _, _ in slices])):  # noqa: B023 (used at once)
                    output = self.model.run(prepared)
                p, result = self._answers(items, self.model.postprocess(prepared, output))
                self._deliver(slices, items, p, result, time.perf_counter() - t0)
            except CallAbandonedError:
                for job, _, _ in slices:
                    job.event.set()
            except Exception:
                self._isolate(slices)
            except BaseException as exc:  # never leave jobs waiting
                for job, _, _ in slices:
                    job.error = job.error or exc
                    job.event.set()
            finally:
                with self._cond:
                    self._running_batch = not self._handoff.empty()
                    self._cond.notify_all()

    def _isolate(self, slices: list[tuple[_Job, int, int]]) -> None:
        for piece in slices:
            self._run_call([piece])

    def _deliver(
        self, slices: list[tuple[_Job, int, int]], items: list[Item], p: np.ndarray, result: Any, seconds: float
    ) -> None:
        """Hand each job its slice of a model call's answers (and stats); wake the jobs that are complete."""
        offset = 0
        for job, start, stop in slices:
            size = stop - start
            job.p[start:stop] = p[offset : offset + size]
            job.stats.add(result, offset, offset + size, len(items))
            offset += size
            job.done += size
            if job.done == len(job.items):
                job.event.set()
        requests = len({id(job.ticket) for job, _, _ in slices})
        self.metrics.batch(self.name, BatchRecord(len(items), len(slices), requests, seconds))


class BoundComparator:
    """A request's view of one scheduler: ``compare_batch`` queues and waits under the request's ticket."""

    __slots__ = ("scheduler", "ticket")

    def __init__(self, scheduler: BatchScheduler, ticket: Ticket) -> None:
        self.scheduler = scheduler
        self.ticket = ticket

    def compare_batch(self, items: Sequence[Item]) -> RequestAnswer:
        return self.scheduler.submit(self.ticket, items)

    def compare_sets(self, query: str, groups: Sequence[Sequence[str]]) -> Any:
        """K-wise calls of a setwise model (one per group), run on the request's own thread under its ticket:
        refused once the request is over, abandoned at the model's next backend call when it ends (cancelled or
        past its deadline). They are not merged with other requests' calls (a K-wise call is one prompt)."""
        ticket = self.ticket
        ticket.check()
        try:
            with abandon_when(lambda: ticket.cancelled or ticket.expired()):
                return self.scheduler.model.compare_sets(query, groups)
        except CallAbandonedError:
            ticket.check()
            raise RequestCancelledError("request cancelled") from None

    @property
    def kind(self) -> str:
        """The served model's kind (``bi-encoder``, ``mono-t5``, ...): which absolute scale its scores have."""
        return str(getattr(self.scheduler.model, "kind", ""))

    @property
    def pointwise(self) -> bool:
        """The model scores each passage alone (a cascade stage then ranks by ``score``)."""
        return bool(getattr(self.scheduler.model, "pointwise", False))

    def score(self, query: str, passages: Sequence[str]) -> RequestAnswer:
        """Per-passage scores of a pointwise model (a cascade's pointwise stage), through the scheduler:
        its queue limit, streams, batching with other requests' score jobs, metrics and the request's
        stats, as every other model call of the request."""
        return self.scheduler.submit(self.ticket, [(query, p, p) for p in passages], pointwise=True)


def _split(slices: list[tuple[_Job, int, int]], parts: int) -> list[list[tuple[_Job, int, int]]]:
    """Whole slices in at most ``parts`` contiguous groups of about equal items."""
    parts = min(parts, len(slices))
    if parts <= 1:
        return [slices]
    total = sum(stop - start for _, start, stop in slices)
    groups: list[list[tuple[_Job, int, int]]] = [[]]
    done = 0
    for piece in slices:
        if groups[-1] and len(groups) < parts and done >= total * len(groups) / parts:
            groups.append([])
        groups[-1].append(piece)
        done += piece[2] - piece[1]
    return groups


def _all_over(jobs: Sequence[_Job]) -> bool:
    """Whether no one waits for these jobs' answers any more (each cancelled, expired or failed)."""
    now = time.monotonic()
    return all(job.dead(now) for job in jobs)


def _reason(job: _Job) -> str:
    if job.error is not None:
        return "error"
    return "deadline" if job.ticket.by_deadline() else "cancelled"
