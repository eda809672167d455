"""Offline work on Ray (``--engine ray``): a pool of actors, each building its state once (a model), that maps
jobs to results. The pool knows no command: each command hands it its own per-actor state and method
(``rerank rank``: :class:`rerank.offline.QueryRanker`; ``rerank bench budgets``:
:class:`rerank.bench.budgets.PreferenceScorer`; ``rerank index build``: :class:`rerank.retrieval.build.TextEmbedder`)
through :func:`ray_mapper`.

Ray is an optional extra (``pip install 'rerank[distributed]'``) and is imported only when a pool is made.
The driver keeps everything that must be written once: the resumable output of ``rerank rank``, the
preference cache of ``rerank bench budgets``, the index of ``rerank index build``; the actors only compute.

Fault tolerance is Ray's own: each actor is restarted by Ray when its process dies (``max_restarts``) and the
task it was running is retried on the restarted actor (``max_task_retries``), which Ray may place on any node
with a free CPU. Results come back in the order of the jobs (held back until the jobs before them are done, with
a bounded number of jobs out at once), so a Ray run writes the same file as a local one.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .pipeline import RequestError

J = TypeVar("J")

# Ray's own floor for the object store is 75 MiB; jobs here are text and small arrays.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024
# The address of a local Ray's one node. Ray 2.60 on Linux replaces 127.0.0.1 (and localhost) by the machine's
# outward address; another loopback address keeps a local Ray's processes on loopback (127.0.0.0/8 is all
# loopback on Linux; elsewhere Ray keeps 127.0.0.1 as given).
LOCAL_NODE_IP = "127.0.0.2" if sys.platform.startswith("linux") else "127.0.0.1"


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


#: While no job finishes, how often the pool checks that the cluster still has the CPUs of all its workers, and
#: how long it waits for them (a lost node's worker restarts only where a CPU is free) before it gives up with
#: an error instead of waiting without end (``RERANK_RAY_PLACEMENT_WAIT_S`` sets the wait).
CAPACITY_CHECK_S = 2.0
PLACEMENT_WAIT_S = float(os.environ.get("RERANK_RAY_PLACEMENT_WAIT_S", "60"))
CONNECT_TIMEOUT_S = 5.0  # the TCP check of --address before Ray's own connect (which retries for minutes)


def connection_advice(address: str, reason: str) -> str:
    """The one line a failed ``--address`` gets: what to check."""
    return (f"cannot join the Ray cluster at {address}: {reason}; check the address (the head's "
            f"`ray start --head --port`), RAY_AUTH_MODE (the same here as on the cluster), and the node IP (Ray "
            "replaces 127.0.0.1 by this machine's outward address: on one host start each node with its own "
            "--node-ip-address 127.0.0.N, N >= 2, and give --address 127.0.0.2:PORT; see docs/scaling.md)")


def join_cluster(ray: Any, address: str) -> None:
    """``ray.init`` on a running cluster, after a bounded TCP check of ``HOST:PORT`` (Ray's own connect retries
    for minutes); any failure is one ``RuntimeError`` line naming what to check."""
    host, _, port = address.rpartition(":")
    if host and port.isdigit() and "://" not in address:
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise RuntimeError(connection_advice(address, exc.strerror or str(exc) or type(exc).__name__)) from None
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, its own AuthenticationError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RuntimeError(connection_advice(address, first)) from None


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

    def node(self) -> str:
        """The address of the Ray node this actor runs on."""
        import ray

        return str(ray.util.get_node_ip_address())


@dataclass
class _Out:
    """A job sent to an actor: where, how often, and its result once back."""

    job: Any
    actor: Any = None
    ref: Any = None
    attempts: int = 0
    done: bool = False
    result: Any = None


class RayPool:
    """``workers`` Ray actors built from ``factory`` (a picklable callable returning the per-actor state).

    Without ``options.address`` a local Ray is started with as many CPUs as workers and a small object store,
    and shut down by :meth:`close`. Use as a context manager."""

    def __init__(self, factory: Callable[[], Any], options: RayOptions = RayOptions()) -> None:
        ray = self.ray = _ray()
        self.started, self.actors, self.max_restarts = False, [], options.max_restarts
        self.cpus_per_worker = options.cpus_per_worker
        self.address = options.address
        if not ray.is_initialized():
            if options.address is None:
                cpus = (options.workers or os.cpu_count() or 1) * options.cpus_per_worker
                ray.init(address="local", num_cpus=max(1, int(np.ceil(cpus))), include_dashboard=False,
                         object_store_memory=options.object_store_bytes, log_to_driver=False,
                         configure_logging=False, _node_ip_address=LOCAL_NODE_IP)
            else:
                join_cluster(ray, options.address)
            self.started = True
        cpus = ray.cluster_resources().get("CPU", 0)
        slots = int(cpus // options.cpus_per_worker)
        workers = options.workers or max(1, slots)
        if workers > slots:  # an actor Ray cannot place would wait for a CPU forever
            self.close()
            raise RuntimeError(f"--workers {workers} needs {workers * options.cpus_per_worker:g} CPUs; the Ray "
                               f"cluster has {cpus:g}")
        # SPREAD: one actor per node before a second on any, so a cluster's nodes all work
        actor = ray.remote(num_cpus=options.cpus_per_worker, max_restarts=options.max_restarts,
                           max_task_retries=options.max_restarts, scheduling_strategy="SPREAD")(_Worker)
        self.actors = [actor.remote(factory) for _ in range(workers)]

    @property
    def workers(self) -> int:
        return len(self.actors)

    def nodes(self) -> list[str]:
        """The node address of each actor (waits until each has built its state). Actors that never start
        (e.g. a driver whose RAY_AUTH_MODE differs from the cluster's) are one ``RuntimeError`` line."""
        try:
            return self.ray.get([a.node.remote() for a in self.actors])
        except self.ray.exceptions.RayError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RuntimeError(connection_advice(self.address or "this machine (a local Ray)",
                                                 f"its Ray workers did not start ({first})")) from None

    def describe(self) -> str:
        """``2 Ray workers on 2 nodes (127.0.0.2: 1, 127.0.0.3: 1)``."""
        counts: dict[str, int] = {}
        for node in self.nodes():
            counts[node] = counts.get(node, 0) + 1
        where = ", ".join(f"{node}: {n}" for node, n in sorted(counts.items()))
        return f"{self.workers} Ray workers on {len(counts)} nodes ({where})"

    def pids(self) -> list[int]:
        """The actors' process ids (waits until each has built its state)."""
        return self.ray.get([a.pid.remote() for a in self.actors])

    def map(self, method: str, jobs: Iterable[J]) -> Iterator[tuple[J, Any]]:
        """``(job, state.method(job))`` in the order of ``jobs``. Each actor has at most two jobs queued and
        gets the next one when one of its own finishes, while at most ``4 * workers`` jobs are out (running, or
        done and waiting for the jobs before them); the input is read lazily. An exception raised by the method
        is raised here as itself.

        A job whose actor became unavailable (its process or its node died; Ray restarts the actor, on another
        node if need be) is sent again, up to ``max_restarts`` times: jobs are pure functions of their input."""
        ray = self.ray
        running: dict[Any, _Out] = {}  # object ref -> the job out on it
        order: deque[_Out] = deque()  # jobs out, in input order, until yielded
        free = deque(self.actors * 2)  # one entry per queue slot of an actor
        source = iter(jobs)
        limit = 4 * len(self.actors)

        def submit(out: _Out) -> None:
            out.actor = free.popleft()
            out.ref = out.actor.call.remote(method, out.job)
            running[out.ref] = out

        def fill() -> None:
            while free and len(order) < limit:
                job = next(source, None)
                if job is None:
                    return
                order.append(_Out(job))
                submit(order[-1])

        short_since: float | None = None  # since when the cluster lacks the CPUs of the pool's workers
        fill()
        while order:
            if order[0].done:
                head = order.popleft()
                yield head.job, head.result
                fill()
                continue
            done, _ = ray.wait(list(running), num_returns=1, timeout=CAPACITY_CHECK_S)
            if not done:
                short_since = self._check_capacity(short_since)
                continue
            short_since = None
            [ready] = done
            out = running.pop(ready)
            free.append(out.actor)
            try:
                out.result, out.done = ray.get(ready), True
            except ray.exceptions.RayTaskError as exc:
                raise exc.cause if isinstance(exc.cause, Exception) else exc from None
            except ray.exceptions.RayActorError as exc:
                out.attempts += 1
                if out.attempts > self.max_restarts:
                    raise RuntimeError(f"Ray gave up on a job after {out.attempts} tries, the last "
                                       f"{type(exc).__name__}: {exc}") from None
                submit(out)
            except ray.exceptions.RayError as exc:
                raise RuntimeError(f"Ray gave up on a job after {type(exc).__name__}: {exc}") from None
            fill()

    def _check_capacity(self, since: float | None) -> float | None:
        """None while the cluster has a CPU for every worker; else since when it lacks them, and an error once
        that lasted :data:`PLACEMENT_WAIT_S` (a worker of a lost node waits for a free CPU, and its jobs with it)."""
        need = len(self.actors) * self.cpus_per_worker
        have = float(self.ray.cluster_resources().get("CPU", 0))
        if have >= need:
            return None
        now = time.monotonic()
        since = now if since is None else since
        if now - since >= PLACEMENT_WAIT_S:
            fits = int(have // self.cpus_per_worker)
            raise RuntimeError(f"the Ray cluster has {have:g} CPUs for {len(self.actors)} workers (a node left "
                               f"{now - since:.0f} s ago) and a lost worker cannot start again: add a node, or run "
                               f"again with --workers {max(1, fits)} (the output resumes)")
        return since

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


def ray_mapper(
    factory: Callable[[], Any], method: str, options: RayOptions,
) -> Callable[[Iterable[J]], Iterator[tuple[J, Any]]]:
    """A mapper for a command's loop: ``(job, factory().method(job))`` pairs in job order, from a pool of
    actors made when the loop starts and closed when it ends. ``factory`` is the command's own picklable
    per-actor state (it loads the model once per actor)."""

    def map_jobs(jobs: Iterable[J]) -> Iterator[tuple[J, Any]]:
        with RayPool(factory, options) as pool:
            sys.stderr.write(f"rerank: note: {pool.describe()}\n")
            yield from pool.map(method, jobs)

    return map_jobs
