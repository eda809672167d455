"""Reading and writing TREC-style files: qrels, runs, queries and JSONL corpora.

A *run* is ``{qid: {docid: score}}``; a *ranking* is ``{qid: [docid, ...]}`` best first. Ranking order follows
trec_eval exactly: score descending, ties broken by docid descending (byte-wise string comparison); the rank
column of a run file is ignored, as trec_eval ignores it.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import IO

__all__ = [
    "rank_docs",
    "read_corpus",
    "read_qrels",
    "read_queries",
    "read_run",
    "run_to_rankings",
    "write_run",
]

PathLike = str | os.PathLike[str]


class NotUTF8Error(ValueError):
    """A text input that is not UTF-8."""


def numbered_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)``; :class:`NotUTF8Error` when the text does not decode (text files decode
    a block at a time, so the error says after which line, not on which)."""
    lineno = 0
    try:
        for lineno, line in enumerate(lines, start=1):
            yield lineno, line
    except UnicodeDecodeError as exc:
        where = f"after line {lineno}" if lineno else "in its first lines"
        raise NotUTF8Error(f"not UTF-8 text (an invalid byte {where}: {exc.reason})") from None


def _name(path: PathLike) -> str:
    return "stdin" if os.fspath(path) == "-" else os.fspath(path)


def _numbered(path: PathLike) -> Iterator[tuple[int, str]]:
    """:func:`numbered_lines` of a UTF-8 file (``-``: stdin); the error names the file."""
    with _open_text(path) as f:
        try:
            yield from numbered_lines(f)
        except NotUTF8Error as exc:
            raise NotUTF8Error(f"{_name(path)}: {exc}") from None


@contextlib.contextmanager
def _open_text(path: PathLike) -> Iterator[IO[str]]:
    if os.fspath(path) != "-":
        with open(path, encoding="utf-8") as f:
            yield f
        return
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        yield sys.stdin
        return
    stdin = io.TextIOWrapper(buffer, encoding="utf-8")  # UTF-8 whatever the locale says
    try:
        yield stdin
    finally:
        stdin.detach()  # leave sys.stdin open


def _lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, stripped_line)`` for the non-blank lines of a UTF-8 text file."""
    for lineno, line in _numbered(path):
        line = line.strip()
        if line:
            yield lineno, line


def _error(path: PathLike, lineno: int, message: str) -> ValueError:
    return ValueError(f"{_name(path)}:{lineno}: {message}")


def read_qrels(path: PathLike) -> dict[str, dict[str, int]]:
    """Read TREC qrels (``qid iter docid relevance``) into ``{qid: {docid: relevance}}``.

    Raises ValueError (naming file and line) on a line without 4 fields, a non-integer relevance or a
    duplicate ``(qid, docid)`` pair.
    """
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in _lines(path):
        parts = line.split()
        if len(parts) != 4:
            raise _error(path, lineno, f"expected 4 fields 'qid iter docid rel', got {len(parts)}: {line!r}")
        qid, _, docid, rel = parts
        try:
            grade = int(rel)
        except ValueError:
            raise _error(path, lineno, f"relevance is not an integer: {rel!r}") from None
        judged = qrels.setdefault(qid, {})
        if docid in judged:
            raise _error(path, lineno, f"duplicate judgment for query {qid!r}, document {docid!r}")
        judged[docid] = grade
    return qrels


def read_run(path: PathLike) -> dict[str, dict[str, float]]:
    """Read a TREC run (``qid Q0 docid rank score tag``) into ``{qid: {docid: score}}``.

    The rank column must be an integer but is otherwise ignored (trec_eval ranks by score). Raises ValueError
    (naming file and line) on a line without 6 fields, a bad rank or score, or a duplicate document.
    """
    run: dict[str, dict[str, float]] = {}
    for lineno, line in _lines(path):
        parts = line.split()
        if len(parts) != 6:
            raise _error(
                path, lineno, f"expected 6 fields 'qid Q0 docid rank score tag', got {len(parts)}: {line!r}"
            )
        qid, _, docid, rank, score, _tag = parts
        try:
            int(rank)
        except ValueError:
            raise _error(path, lineno, f"rank is not an integer: {rank!r}") from None
        try:
            value = float(score)
        except ValueError:
            raise _error(path, lineno, f"score is not a number: {score!r}") from None
        if math.isnan(value):
            raise _error(path, lineno, "score is NaN")
        docs = run.setdefault(qid, {})
        if docid in docs:
            raise _error(path, lineno, f"duplicate document {docid!r} for query {qid!r}")
        docs[docid] = value
    return run


def rank_docs(scores: Mapping[str, float]) -> list[str]:
    """Docids of one query best first, as trec_eval orders them: score descending, then docid descending."""
    return sorted(scores, key=lambda d: (scores[d], d), reverse=True)


def run_to_rankings(run: Mapping[str, Mapping[str, float]]) -> dict[str, list[str]]:
    """Turn ``{qid: {docid: score}}`` into ``{qid: [docid, ...]}`` in trec_eval's order (see `rank_docs`)."""
    return {qid: rank_docs(scores) for qid, scores in run.items()}


def write_run(
    run: Mapping[str, Mapping[str, float]], path_or_file: PathLike | IO[str], tag: str = "rerank"
) -> None:
    """Write a run in TREC format, ranks 1.. in trec_eval's order; scores round-trip exactly."""
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"run tag must be a non-empty string without whitespace, got {tag!r}")
    lines = []
    for qid, scores in run.items():
        for rank, docid in enumerate(rank_docs(scores), start=1):
            lines.append(f"{qid} Q0 {docid} {rank} {float(scores[docid])!r} {tag}\n")
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "w", encoding="utf-8") as f:
            f.writelines(lines)
    else:
        path_or_file.writelines(lines)


def read_queries(path: PathLike) -> dict[str, str]:
    """Read ``qid<TAB>text`` lines into ``{qid: text}``; ValueError (file, line) on a malformed line."""
    queries: dict[str, str] = {}
    for lineno, raw in _numbered(path):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        qid, sep, text = line.partition("\t")
        qid = qid.strip()
        if not sep or not qid:
            raise _error(path, lineno, f"expected 'qid<TAB>text': {line!r}")
        if qid in queries:
            raise _error(path, lineno, f"duplicate query id {qid!r}")
        queries[qid] = text.strip()
    return queries


def _starts_with_title(text: str, title: str) -> bool:
    """Whether ``text`` already begins with ``title`` (ignoring whitespace, allowing small edits)."""
    if text.startswith(title):
        return True
    squash_text, squash_title = "".join(text.split()), "".join(title.split())
    if squash_text.startswith(squash_title):
        return True
    head = squash_text[: len(squash_title)]
    return difflib.SequenceMatcher(None, head, squash_title, autojunk=False).ratio() >= 0.9


def read_corpus(path: PathLike, title_sep: str = " ") -> dict[str, str]:
    """Read a JSONL corpus (``{"id", "text", optional "title"}``) into ``{docid: text}``.

    A non-empty title goes in front of the text, joined by ``title_sep``, unless the text already starts
    with it (as in the Cranfield and CISI files here, whose texts repeat the title, sometimes with small
    spacing or spelling differences). Raises ValueError (file, line) on bad JSON or a missing id/text.
    """
    corpus: dict[str, str] = {}
    for lineno, line in _lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _error(path, lineno, f"invalid JSON: {exc.msg}") from None
        if not isinstance(obj, dict) or "id" not in obj or not isinstance(obj.get("text"), str):
            raise _error(path, lineno, "expected an object with 'id' and a string 'text'")
        docid = str(obj["id"])
        if docid in corpus:
            raise _error(path, lineno, f"duplicate document id {docid!r}")
        text: str = obj["text"]
        title = obj.get("title")
        if title is not None and not isinstance(title, str):
            raise _error(path, lineno, "'title' must be a string")
        if title and title.strip() and not _starts_with_title(text, title.strip()):
            text = f"{title.strip()}{title_sep}{text}" if text else title.strip()
        corpus[docid] = text
    return corpus
