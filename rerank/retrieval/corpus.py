"""Reading a JSONL corpus for indexing: texts exactly as ``read_corpus`` gives them (title handling is
done there), plus each line's metadata (``title`` and any other field) and line number for messages."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank.evaluation import read_corpus, read_queries

from .errors import CorpusError


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    line: int
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Corpus:
    path: Path
    sha256: str
    documents: list[Document]
    skipped_empty: list[Document]


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise CorpusError(f"{what} file {path} not found")
    if not path.is_file():
        raise CorpusError(f"{what} {path} is not a file")


def read_documents(path: str | os.PathLike[str], *, skip_empty: bool = False) -> Corpus:
    """Documents of a JSONL corpus ``{"id", "text"[, "title", ...]}`` in file order.

    Raises ``CorpusError`` naming file and line on a malformed line, a duplicate id or (unless
    ``skip_empty``) a document whose text is empty; ``skip_empty`` leaves such documents out and lists them."""
    path = Path(path)
    _check_file(path, "corpus")
    try:
        texts = read_corpus(path)
    except ValueError as exc:  # read_corpus names file and line
        raise CorpusError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise CorpusError(f"cannot read corpus {path}: {exc.strerror}") from None
    docs: list[Document] = []
    empty: list[Document] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            obj = json.loads(line)  # read_corpus parsed it already
            docid = str(obj["id"])
            meta = {k: v for k, v in obj.items() if k not in ("id", "text")}
            doc = Document(docid, texts[docid], lineno, meta)
            if not docid.strip():
                raise CorpusError(f"{path}:{lineno}: empty document id")
            if not doc.text.strip():
                if not skip_empty:
                    raise CorpusError(
                        f"{path}:{lineno}: document {docid!r} has empty text (--skip-empty leaves such documents out)"
                    )
                empty.append(doc)
                continue
            docs.append(doc)
    if not docs:
        raise CorpusError(f"corpus {path} holds no documents" + (" with text" if empty else ""))
    return Corpus(path, file_sha256(path), docs, empty)


def read_query_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Queries ``qid<TAB>text``; ``CorpusError`` (file, line) on a malformed line or an empty query."""
    path = Path(path)
    _check_file(path, "queries")
    try:
        queries = read_queries(path)
    except ValueError as exc:
        raise CorpusError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise CorpusError(f"cannot read queries {path}: {exc.strerror}") from None
    for qid, text in queries.items():
        if not text.strip():
            raise CorpusError(f"{path}:{_query_line(path, qid)}: query {qid!r} has empty text")
    if not queries:
        raise CorpusError(f"queries file {path} holds no queries")
    return queries


def _query_line(path: Path, qid: str) -> int:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.partition("\t")[0].strip() == qid:
                return lineno
    return 0
