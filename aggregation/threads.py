"""BLAS threads for the engine's small dense solves, chosen by the engine, not by the user's environment.

OpenBLAS starts one thread per core. The engine's matrices are small (k x k for k candidates), and on a
2-core machine two BLAS threads make a k = 200 Bradley-Terry fit 1.3x slower when idle and up to 10x
(a single 200 x 200 solve: 6 ms -> 150 ms) when other processes load the cores, because the threads
spin-wait for each other. Every served request runs such a fit, so the engine runs its BLAS calls on
one thread up to :data:`SINGLE_THREAD_MAX_ITEMS` items and leaves larger problems to the environment's
setting (bench/results/blas_threads.md has the figures).

The limit is process-wide (OpenBLAS has one thread setting), so concurrent requests share it through a
reference count: the first entry sets one thread, the last exit restores what was there before. The
server runs requests on worker threads; threadpoolctl's ``set_num_threads`` ignores OpenBLAS calls from
any thread but the first one that used it (it cannot know how callers coordinate), so the setting goes
through its underlying setter, under this module's lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from threadpoolctl import ThreadpoolController

#: Largest problem (items) whose BLAS calls run on one thread.
SINGLE_THREAD_MAX_ITEMS = 1000

_lock = threading.Lock()
_depth = 0
_saved: list[int] = []
_libraries: list[Any] | None = None

F = TypeVar("F", bound=Callable[..., Any])


def _blas_libraries() -> list[Any]:
    """threadpoolctl controllers of the BLAS libraries loaded (numpy's and scipy's), found once."""
    global _libraries
    if _libraries is None:
        # scipy's own OpenBLAS must be loaded for the controller to see it; importing it here, at the first
        # solve, keeps `import rerank.pipeline` (and so `rerank --help`) free of scipy
        import scipy.linalg  # noqa: F401
        _libraries = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _libraries


def _set_threads(library: Any, threads: int) -> None:
    setter = getattr(library, "_real_set_num_threads", None) or library.set_num_threads
    setter(threads)


def blas_threads() -> list[int]:
    """Current thread setting of each loaded BLAS library."""
    return [lib.get_num_threads() for lib in _blas_libraries()]


@contextmanager
def small_solves(n_items: int) -> Iterator[None]:
    """Run the block on one BLAS thread when ``n_items <= SINGLE_THREAD_MAX_ITEMS`` (re-entrant, thread-safe)."""
    global _depth, _saved
    if n_items > SINGLE_THREAD_MAX_ITEMS:
        yield
        return
    with _lock:
        if _depth == 0:
            libraries = _blas_libraries()
            _saved = [lib.get_num_threads() for lib in libraries]
            for lib in libraries:
                _set_threads(lib, 1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for lib, threads in zip(_blas_libraries(), _saved, strict=True):
                    _set_threads(lib, threads)


def small_solve_threads(fn: F) -> F:
    """Decorate ``fn(comparisons, ...)`` so its BLAS calls follow :func:`small_solves` for its item count."""

    @functools.wraps(fn)
    def wrapper(comparisons: Any, *args: Any, **kwargs: Any) -> Any:
        with small_solves(comparisons.n_items):
            return fn(comparisons, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
