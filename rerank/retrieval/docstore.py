"""The document store: SQLite, FAISS row -> document id, text and metadata (e.g. the title).

One table ``docs(row INTEGER PRIMARY KEY, id TEXT UNIQUE, text TEXT, meta TEXT)``: ``row`` is the vector's
position in the FAISS index (0..n-1, append-only), ``meta`` a JSON object of the corpus line's fields other
than ``id`` and ``text``. One connection per store, shared by threads under a lock (look-ups by primary key
take microseconds).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CorruptIndexError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    row  INTEGER PRIMARY KEY,
    id   TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    meta TEXT
)
"""
_CHUNK = 500  # host parameters per IN (...) query (SQLite allows 999 in old builds)


@dataclass(frozen=True)
class StoredDoc:
    row: int
    id: str
    text: str
    meta: Mapping[str, Any]


class DocStore:
    """SQLite store of the index's documents; thread-safe."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = True, create: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if create:
            conn = sqlite3.connect(self.path, check_same_thread=False)
            conn.execute(_SCHEMA)
            conn.commit()
        else:
            if not self.path.is_file():
                raise CorruptIndexError(f"document store {self.path} is missing")
            uri = f"{self.path.resolve().as_uri()}?mode={'ro' if readonly else 'rw'}"
            try:
                conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                conn.execute("SELECT row, id, text, meta FROM docs LIMIT 1").fetchall()
            except sqlite3.DatabaseError as exc:
                raise CorruptIndexError(f"document store {self.path} is unreadable: {exc}") from None
        self._conn = conn
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> DocStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])

    def max_row(self) -> int:
        with self._lock:
            value = self._conn.execute("SELECT MAX(row) FROM docs").fetchone()[0]
        return -1 if value is None else int(value)

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        """The ids among ``ids`` that the store already holds."""
        ids = list(ids)
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in self._conn.execute(f"SELECT id FROM docs WHERE id IN ({marks})", chunk))
        return found

    def add(self, docs: Iterable[tuple[int, str, str, Mapping[str, Any]]]) -> int:
        """Insert ``(row, id, text, meta)`` tuples in one transaction; returns how many."""
        rows = [(int(r), str(i), t, json.dumps(dict(m), ensure_ascii=False) if m else None) for r, i, t, m in docs]
        with self._lock, self._conn:
            self._conn.executemany("INSERT INTO docs (row, id, text, meta) VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def get_rows(self, rows: Sequence[int]) -> dict[int, StoredDoc]:
        """Documents by FAISS row (rows not in the store are left out)."""
        return {d.row: d for d in self._select("row", sorted({int(r) for r in rows}))}

    def get_ids(self, ids: Sequence[str]) -> dict[str, StoredDoc]:
        """Documents by id (ids not in the store are left out)."""
        return {d.id: d for d in self._select("id", list(dict.fromkeys(ids)))}

    def _select(self, column: str, values: list[Any]) -> list[StoredDoc]:
        """The documents whose ``column`` (``row`` or ``id``) is one of ``values``, in chunks of _CHUNK."""
        out: list[StoredDoc] = []
        with self._lock:
            for start in range(0, len(values), _CHUNK):
                chunk = values[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT row, id, text, meta FROM docs WHERE {column} IN ({marks})"
                for row, docid, text, meta in self._conn.execute(query, chunk):
                    out.append(StoredDoc(row, docid, text, json.loads(meta) if meta else {}))
        return out

    def iter_docs(self) -> Iterator[StoredDoc]:
        """All documents in row order (a snapshot read in pages)."""
        last = -1
        while True:
            with self._lock:
                page = self._conn.execute(
                    "SELECT row, id, text, meta FROM docs WHERE row > ? ORDER BY row LIMIT 1000", (last,)
                ).fetchall()
            if not page:
                return
            for row, docid, text, meta in page:
                yield StoredDoc(row, docid, text, json.loads(meta) if meta else {})
            last = page[-1][0]

    def copy_to(self, path: str | os.PathLike[str]) -> None:
        """A consistent copy of the store at ``path`` (SQLite online backup)."""
        target = sqlite3.connect(Path(path))
        try:
            with self._lock:
                self._conn.backup(target)
        finally:
            target.close()
