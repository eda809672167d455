"""Batched embedding of many texts with a bi-encoder, with a progress line (done/total, docs/s).

Texts are embedded longest first in chunks of ``batch_size`` (so each chunk pads to similar lengths), then put
back in input order; vectors are float32 and L2-normalised (inner product = cosine).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from ..progress import eta_text

DEFAULT_BATCH_SIZE = 256


@dataclass
class Progress:
    """A one-line progress report on ``stream`` (stderr by default).

    On a terminal the line is rewritten in place; elsewhere (logs, pipes) a line is printed at most every
    ``interval_s`` seconds and at the end. ``stream=None`` turns it off."""

    label: str = "embedded"
    stream: TextIO | None = sys.stderr
    interval_s: float = 10.0
    unit: str = "docs"

    def __post_init__(self) -> None:
        self._start = time.perf_counter()
        self._last = 0.0
        self._tty = bool(self.stream is not None and getattr(self.stream, "isatty", lambda: False)())

    def restart(self) -> None:
        self._start = time.perf_counter()
        self._last = 0.0

    def rate(self, done: int) -> float:
        elapsed = time.perf_counter() - self._start
        return done / elapsed if elapsed > 0 else 0.0

    def update(self, done: int, total: int, *, final: bool = False) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        if not final and not self._tty and now - self._last < self.interval_s:
            return
        self._last = now
        elapsed = now - self._start
        rate = self.rate(done)
        left = f", ETA {eta_text((total - done) / rate)}" if rate > 0 and done < total else ""
        text = (f"{self.label} {done:,}/{total:,} {self.unit} ({100.0 * done / max(total, 1):.0f}%), "
                f"{rate:,.1f} {self.unit}/s, {elapsed:.1f} s{left}")
        if self._tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


@dataclass(frozen=True)
class EmbedBatch:
    """One embedding call: the rows of the input it fills and their texts (already cut to ``max_chars``)."""

    rows: np.ndarray
    texts: list[str]
    role: str


MapBatches = Callable[[Iterable[EmbedBatch]], Iterator[tuple[EmbedBatch, np.ndarray]]]


def embed_batch(model: Any, batch: EmbedBatch) -> np.ndarray:
    return np.asarray(model.embed(batch.texts, role=batch.role), dtype=np.float32)


def embed_texts(
    model: Any,
    texts: Sequence[str],
    *,
    role: str = "passage",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    map_batches: MapBatches | None = None,
) -> np.ndarray:
    """``[len(texts), dim]`` float32 L2-normalised embeddings of ``texts`` by ``model.embed``.

    Texts longer than the model's ``max_chars`` are cut to it first (the model reads only its token budget
    of each text anyway; the document store keeps the whole text). Raises the model's ``EmptyTextError`` on an
    empty text (callers check texts first, with file and line). ``map_batches`` (e.g. a pool of Ray actors,
    :mod:`rerank.distributed`) runs the same batches elsewhere, in any order; by default ``model`` runs them
    here."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(texts)
    options = getattr(model, "options", None)
    max_chars = int(getattr(options, "max_chars", 0) or 0)
    order = np.argsort(-np.fromiter((len(t) for t in texts), dtype=np.int64, count=n), kind="stable")
    out: np.ndarray | None = None
    if progress is not None:
        progress.restart()
    done = 0
    batches = (
        EmbedBatch(rows, [texts[i][:max_chars] if max_chars else texts[i] for i in rows], role)
        for rows in (order[start : start + batch_size] for start in range(0, n, batch_size))
    )
    if map_batches is None:
        map_batches = lambda todo: ((batch, embed_batch(model, batch)) for batch in todo)  # noqa: E731
    for batch, values in map_batches(batches):
        if out is None:
            out = np.empty((n, values.shape[1]), dtype=np.float32)
        out[batch.rows] = values
        done += len(batch.rows)
        if progress is not None:
            progress.update(done, n, final=done == n)
    if out is None:
        return np.zeros((0, 0), dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, np.maximum(norms, 1e-12), out=out)
    return out
