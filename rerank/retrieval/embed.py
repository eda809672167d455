"""Batched embedding of many texts with a bi-encoder, with progress (done/total, docs/s, ETA).

Texts are embedded longest first in chunks of ``batch_size`` (so each chunk pads to similar lengths), then put
back in input order; vectors are float32 and L2-normalised (inner product = cosine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..progress import Progress

DEFAULT_BATCH_SIZE = 256


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
    here. ``progress`` (a :class:`rerank.progress.Progress`) is reset to ``len(texts)`` and closed at the end."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(texts)
    options = getattr(model, "options", None)
    max_chars = int(getattr(options, "max_chars", 0) or 0)
    order = np.argsort(-np.fromiter((len(t) for t in texts), dtype=np.int64, count=n), kind="stable")
    out: np.ndarray | None = None
    if progress is not None:
        progress.reset(n)
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
        if progress is not None:
            progress.update(len(batch.rows))
    if progress is not None:
        progress.close()
    if out is None:
        return np.zeros((0, 0), dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, np.maximum(norms, 1e-12), out=out)
    return out
