"""Offline work on Ray (``--engine ray``): a pool of actors, each building its model once, that maps jobs
(queries to rank, queries whose preferences to cache, batches of texts to embed) to results.

Ray is an optional extra (``pip install 'rerank[distributed]'``) and is imported only when a pool is made.
The driver keeps everything that must be written once: the resumable output of ``rerank rank``, the
preference cache of ``rerank bench budgets``, the index of ``rerank index build``; the actors only compute.

Fault tolerance is Ray's own: each actor is restarted by Ray when its process dies (``max_restarts``) and the
task it was running is retried on the restarted actor (``max_task_retries``), which Ray may place on any node
with a free CPU. Results come back in completion order; callers that care about order put them back.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bench.budgets import MapPrefs, PreferenceJob, all_pair_preferences, load_dataset
from .offline import MapJobs, QueryJob, rank_query
from .pipeline import RankOptions, RequestError, RerankResult
from .retrieval.embed import EmbedBatch, MapBatches, embed_batch
from .retrieval.index import load_embedding_model
from .specs import TrecData, load_comparator

# Ray's own floor for the object store is 75 MiB; jobs here are text and small arrays.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024


def check_engine_arguments(args: argparse.Namespace) -> None:
    """Raises ``RequestError`` for Ray options without ``--engine ray`` or a bad ``--workers``."""
    if args.engine != "ray" and (args.address is not None or args.workers is not None):
        raise RequestError("engine", "--address and --workers need --engine ray")
    if args.workers is not None and args.workers < 1:
        raise RequestError("workers", f"--workers must be >= 1, got {args.workers}")


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: a local Ray started (and stopped) by the pool
    workers: int | None = None  # None: one actor per CPU of the cluster
    cpus_per_worker: float = 1.0
    max_restarts: int = 3  # per actor; a task on a dead actor is retried on its restart as often
    object_store_bytes: int = LOCAL_OBJECT_STORE_BYTES

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RayOptions:
        return cls(address=args.address, workers=args.workers)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError("--engine ray needs Ray: pip install 'rerank[distributed]'") from None
    return ray


class WorkerSetupError(RuntimeError):
    """A worker could not build its state (e.g. load its model): the same on every worker, so not retried."""


class _Worker:
    """The actor body: builds its state once (loads the model), then runs its method on each job. A failed
    set-up is reported by the first job (as :class:`WorkerSetupError`), not by Ray restarting the actor."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.state, self.error = None, ""
        try:
            self.state = factory()
        except Exception as exc:
            self.error = f"cannot set up a Ray worker: {exc}"

    def call(self, method: str, job: Any) -> Any:
        if self.error:
            raise WorkerSetupError(self.error)
        return getattr(self.state, method)(job)

    def pid(self) -> int:
        return os.getpid()


class RayPool:
    """``workers`` Ray actors built from ``factory`` (a picklable callable returning the per-actor state).

    Without ``options.address`` a local Ray is started with as many CPUs as workers and a small object store,
    and shut down by :meth:`close`. Use as a context manager."""

    def __init__(self, factory: Callable[[], Any], options: RayOptions = RayOptions()) -> None:
        ray = self.ray = _ray()
        self.started = False
        if not ray.is_initialized():
            if options.address is None:
                cpus = (options.workers or os.cpu_count() or 1) * options.cpus_per_worker
                ray.init(address="local", num_cpus=max(1, int(np.ceil(cpus))), include_dashboard=False,
                         object_store_memory=options.object_store_bytes, log_to_driver=False,
                         configure_logging=False)
            else:
                ray.init(address=options.address, log_to_driver=False, configure_logging=False)
            self.started = True
        workers = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // options.cpus_per_worker))
        actor = ray.remote(num_cpus=options.cpus_per_worker, max_restarts=options.max_restarts,
                           max_task_retries=options.max_restarts)(_Worker)
        self.actors = [actor.remote(factory) for _ in range(workers)]

    @property
    def workers(self) -> int:
        return len(self.actors)

    def pids(self) -> list[int]:
        """The actors' process ids (waits until each has built its state)."""
        return self.ray.get([a.pid.remote() for a in self.actors])

    def map(self, method: str, jobs: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """``(job, state.method(job))`` in completion order. Each actor has at most two jobs queued and gets
        the next one when one of its own finishes (the input is read lazily). An exception raised by the
        method is raised here as itself."""
        ray = self.ray
        pending: dict[Any, tuple[Any, Any]] = {}  # object ref -> (job, actor)
        source = iter(jobs)

        def submit(actor: Any) -> None:
            job = next(source, None)
            if job is not None:
                pending[actor.call.remote(method, job)] = (job, actor)

        for actor in self.actors * 2:
            submit(actor)
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            job, actor = pending.pop(ready)
            try:
                result = ray.get(ready)
            except ray.exceptions.RayTaskError as exc:
                raise exc.cause if isinstance(exc.cause, Exception) else exc from None
            except ray.exceptions.RayError as exc:  # a worker that kept dying: Ray's retries are spent
                raise RuntimeError(f"Ray gave up on a job after {type(exc).__name__}: {exc}") from None
            submit(actor)
            yield job, result

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []
        if self.started:
            self.ray.shutdown()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- per-actor states: each loads its model once ----------------------------------------------------------
@dataclass(frozen=True)
class QueryRanker:
    """``rerank rank``: ranks one query as the local engine does (same models, options and top_n)."""

    specs: tuple[str, ...]
    options: RankOptions
    top_n: int | None = None
    batch_size: int | None = None
    trec: TrecData | None = None  # only the oracle reads it

    def __call__(self) -> _LoadedRanker:
        return _LoadedRanker(self, [load_comparator(s, trec=self.trec, max_batch_size=self.batch_size)
                                    for s in self.specs])


class _LoadedRanker:
    def __init__(self, spec: QueryRanker, models: list[Any]) -> None:
        self.spec, self.models = spec, models

    def rank(self, job: QueryJob) -> RerankResult:
        return rank_query(job, self.models, self.spec.options, self.spec.top_n)


def ray_rank_mapper(ranker: QueryRanker, options: RayOptions) -> MapJobs:
    """A ``map_jobs`` for :func:`rerank.offline.rank_jobs`: (job, result) pairs from a pool of actors."""

    def map_jobs(jobs: Iterable[QueryJob]) -> Iterator[tuple[QueryJob, RerankResult]]:
        with RayPool(ranker, options) as pool:
            yield from pool.map("rank", jobs)

    return map_jobs


@dataclass(frozen=True)
class PreferenceScorer:
    """``rerank bench budgets``: the model's P over all ordered pairs of one query's top K."""

    spec: str
    dataset: str  # the folder; the oracle reads its judgements

    def __call__(self) -> _LoadedScorer:
        trec = None
        if self.spec.startswith("oracle"):
            data = load_dataset(Path(self.dataset))
            trec = TrecData(data.qrels, data.queries, data.corpus)
        return _LoadedScorer(load_comparator(self.spec, trec=trec))


class _LoadedScorer:
    def __init__(self, model: Any) -> None:
        self.model = model

    def preferences(self, job: PreferenceJob) -> np.ndarray:
        return all_pair_preferences(self.model, job)


def ray_preference_mapper(scorer: PreferenceScorer, options: RayOptions) -> MapPrefs:
    """A ``map_prefs`` for :func:`rerank.bench.budgets.cached_preferences`."""

    def map_prefs(jobs: Iterable[PreferenceJob]) -> Iterator[tuple[PreferenceJob, np.ndarray]]:
        with RayPool(scorer, options) as pool:
            yield from pool.map("preferences", jobs)

    return map_prefs


@dataclass(frozen=True)
class TextEmbedder:
    """``rerank index build``: ``model.embed`` on one batch of texts (the same batches as the local engine)."""

    spec: str
    store: str | None = None

    def __call__(self) -> _LoadedEmbedder:
        return _LoadedEmbedder(load_embedding_model(self.spec, self.store))


class _LoadedEmbedder:
    def __init__(self, model: Any) -> None:
        self.model = model

    def embed(self, batch: EmbedBatch) -> np.ndarray:
        return embed_batch(self.model, batch)


def ray_embed_mapper(embedder: TextEmbedder, options: RayOptions) -> MapBatches:
    """A ``map_batches`` for :func:`rerank.retrieval.embed.embed_texts`: (batch, vectors) pairs."""

    def map_batches(batches: Iterable[EmbedBatch]) -> Iterator[tuple[EmbedBatch, np.ndarray]]:
        with RayPool(embedder, options) as pool:
            yield from pool.map("embed", batches)

    return map_batches
