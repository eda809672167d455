"""Errors of the retrieval package: each carries one clear line for the CLI and the server."""

from __future__ import annotations


class RetrievalError(Exception):
    """Base class: bad input or a bad index folder (the CLI exits 1 with the message)."""


class CorpusError(RetrievalError, ValueError):
    """A corpus or queries file that cannot be used: missing, malformed line, empty text, duplicate id."""


class DuplicateIdError(CorpusError):
    """Documents to add whose ids the index already holds (nothing is written)."""


class NotAnIndexError(RetrievalError):
    """A folder that holds no index (no readable ``manifest.json`` of the rerank-index format)."""


class CorruptIndexError(RetrievalError):
    """An index folder whose parts disagree (manifest, FAISS index and document store)."""


class IndexModelMismatchError(RetrievalError):
    """The index was embedded with another model (name or checksum) than the one asked to search it."""


class DimensionMismatchError(IndexModelMismatchError):
    """Vectors whose dimension differs from the index's."""


class IndexClosedError(RetrievalError):
    """A search on an index that was closed (a server shutting down)."""
