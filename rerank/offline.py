"""Offline ranking (``rerank rank``): JSON lines or TREC files in, rankings out, resumable."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .comparison_io import InputError
from .pipeline import Candidate, Comparator, RankOptions, RequestError, RerankResult, rerank


@dataclass(frozen=True)
class QueryJob:
    """One query to rank: its id, text and first-stage candidates (in first-stage order)."""

    qid: str
    query: str
    candidates: list[Candidate]
    rest: tuple[str, ...] = ()  # TREC mode: run documents below the depth, kept after the re-ranked ones


def _parse_job(row: Any, line: int) -> QueryJob:
    if not isinstance(row, dict):
        raise InputError(line, 'expected a JSON object with keys "qid", "query", "candidates"')
    for key in ("qid", "query", "candidates"):
        if key not in row:
            raise InputError(line, f'missing key "{key}"')
    qid, query, cands = row["qid"], row["query"], row["candidates"]
    if isinstance(qid, bool) or not isinstance(qid, str | int) or qid == "":
        raise InputError(line, '"qid" must be a non-empty string or an integer')
    if not isinstance(query, str) or not query.strip():
        raise InputError(line, '"query" must be a non-empty string')
    if not isinstance(cands, list) or not cands:
        raise InputError(line, '"candidates" must be a non-empty list')
    out: list[Candidate] = []
    seen: set[str] = set()
    for i, c in enumerate(cands):
        if not isinstance(c, dict) or "id" not in c or "text" not in c:
            raise InputError(line, f'candidates[{i}] must be an object with "id" and "text"')
        cid, text = c["id"], c["text"]
        if isinstance(cid, bool) or not isinstance(cid, str | int) or cid == "":
            raise InputError(line, f'candidates[{i}].id must be a non-empty string or an integer')
        if not isinstance(text, str) or not text.strip():
            raise InputError(line, f"candidates[{i}].text must be a non-empty string")
        if str(cid) in seen:
            raise InputError(line, f"candidates[{i}].id {cid!r} is a duplicate")
        seen.add(str(cid))
        out.append(Candidate(str(cid), text))
    return QueryJob(str(qid), query, out)


def read_jsonl_jobs(lines: Iterator[str] | IO[str], *, skip_bad: bool, warn: IO[str]) -> Iterator[QueryJob]:
    """Jobs from JSON lines; a malformed line raises :class:`InputError` or, with ``skip_bad``, is reported
    on ``warn`` by line number and skipped."""
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(number, f"not valid JSON ({exc.msg})") from None
            yield _parse_job(row, number)
        except InputError as exc:
            if not skip_bad:
                raise
            warn.write(f"rerank: warning: skipped {exc}\n")


def trec_jobs(
    run: dict[str, dict[str, float]],
    queries: dict[str, str],
    corpus: dict[str, str],
    depth: int,
) -> Iterator[QueryJob]:
    """Jobs from a TREC run: the top ``depth`` documents of each query (trec_eval order) re-ranked."""
    from .evaluation import rank_docs

    for qid in sorted(run, key=_qid_key):
        if qid not in queries:
            raise InputError(0, f"query {qid!r} of the run is not in the queries file")
        docs = rank_docs(run[qid])
        top = docs[:depth]
        missing = [d for d in top if d not in corpus]
        if missing:
            raise InputError(0, f"query {qid!r}: document {missing[0]!r} of the run is not in the corpus")
        cands = [Candidate(d, corpus[d]) for d in top if corpus[d].strip()]
        empty = tuple(d for d in top if not corpus[d].strip())  # empty texts cannot be compared: keep in place
        yield QueryJob(qid, queries[qid], cands, empty + tuple(docs[depth:]))


def _qid_key(qid: str) -> tuple[int, int | str]:
    return (0, int(qid)) if qid.isdigit() else (1, qid)


class ResumableOutput:
    """Appends one block per finished query and records it in ``<out>.progress`` (qid and byte offset).

    A rerun truncates the output to the last recorded offset (dropping a block cut off mid-write) and
    skips the queries already done, so an interrupted run keeps every finished query.
    """

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        self.path = path
        self.progress_path = path.with_name(path.name + ".progress")
        self.done: set[str] = set()
        if overwrite:
            for p in (self.path, self.progress_path):
                p.unlink(missing_ok=True)
        offset = 0
        if self.progress_path.exists():
            for line in self.progress_path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    qid, off = str(record["qid"]), int(record["offset"])
                except (ValueError, KeyError, TypeError):
                    break  # a progress line cut off mid-write: everything before it is still valid
                self.done.add(qid)
                offset = off
        elif self.path.exists() and self.path.stat().st_size > 0:
            raise FileExistsError(
                f"{self.path} exists and has no {self.progress_path.name}; use --overwrite to replace it"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.path, "a+b")  # noqa: SIM115 - closed in close()
        self._out.truncate(offset)
        self._out.seek(offset)
        self._progress = open(self.progress_path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, qid: str, text: str) -> None:
        self._out.write(text.encode("utf-8"))
        self._out.flush()
        os.fsync(self._out.fileno())
        self._progress.write(json.dumps({"qid": qid, "offset": self._out.tell()}) + "\n")
        self._progress.flush()
        self.done.add(qid)

    def close(self) -> None:
        self._out.close()
        self._progress.close()


class Progress:
    """A one-line progress bar on a terminal, plain lines (every few seconds) otherwise."""

    def __init__(self, stream: IO[str], total: int | None) -> None:
        self.stream = stream
        self.total = total
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self.last = 0.0
        self.queries = 0
        self.comparisons = 0

    def update(self, comparisons: int) -> None:
        self.queries += 1
        self.comparisons += comparisons
        now = time.monotonic()
        if not self.tty and now - self.last < 5.0 and self.queries != self.total:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        of = f"/{self.total}" if self.total else ""
        line = (f"queries {self.queries}{of}  {self.queries / elapsed:.2f} q/s  "
                f"{self.comparisons / elapsed:,.0f} comparisons/s")
        self.stream.write(f"\r{line}" if self.tty else f"rerank: {line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.queries:
            self.stream.write("\n")


def jsonl_record(job: QueryJob, result: RerankResult) -> str:
    ranking = [{"id": r.id, "score": r.score, "rank": i} for i, r in enumerate(result.results, start=1)]
    return json.dumps({
        "qid": job.qid,
        "ranking": ranking,
        "comparisons": result.usage.comparisons,
        "order_inconsistency": result.usage.order_inconsistency,
        "transitive_inconsistency": result.usage.transitive_inconsistency,
        "partial": result.usage.partial,
    }) + "\n"


def trec_record(job: QueryJob, result: RerankResult, tag: str) -> str:
    """Re-ranked documents first, then the rest of the run in its order; scores decrease with rank."""
    ids = [r.id for r in result.results] + list(job.rest)
    n = len(ids)
    return "".join(f"{job.qid} Q0 {d} {rank} {n - rank + 1} {tag}\n" for rank, d in enumerate(ids, start=1))


def rank_jobs(
    jobs: Iterator[QueryJob],
    models: Sequence[Comparator],
    options: RankOptions,
    output: ResumableOutput,
    *,
    trec_tag: str | None = None,
    top_n: int | None = None,
    total: int | None = None,
    progress_stream: IO[str] | None = None,  # None: sys.stderr at call time
) -> int:
    """Rank every job not already in ``output``; returns the number ranked now."""
    progress = Progress(progress_stream or sys.stderr, total)
    ranked = 0
    try:
        for job in jobs:
            if job.qid in output.done:
                continue
            try:
                result = rerank(job.query, job.candidates, models, options, top_n=top_n if trec_tag is None else None)
            except RequestError as exc:
                raise InputError(0, f"query {job.qid!r}: {exc}") from None
            text = trec_record(job, result, trec_tag) if trec_tag else jsonl_record(job, result)
            output.write(job.qid, text)
            ranked += 1
            progress.update(result.usage.comparisons)
    finally:
        progress.close()
    return ranked
