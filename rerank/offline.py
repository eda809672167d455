"""Offline ranking (``rerank rank``): JSON lines or TREC files in, rankings out, resumable.

Three stages, each its own part of this module:

1. inputs: parse and check the input into :class:`QueryJob` s and choose the queries to rank
   (:class:`Selection`). Nothing is dropped silently: a repeated qid is an error naming both lines, a run
   query the queries file lacks is skipped with a note, a ``--qids`` entry the input lacks is an error;
2. the record: :class:`ResumableOutput` keeps the set-up (model, sampler, budget, ...) and the finished
   queries beside the output, and refuses to resume under another set-up;
3. the loop: :func:`rank_jobs` ranks each job not done yet (:func:`rank_query`, here or on Ray workers) and writes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from .comparison_io import InputError
from .evaluation.trec import NotUTF8Error, numbered_lines
from .files import write_text_atomic
from .pipeline import (
    Candidate,
    Comparator,
    Escalation,
    RankOptions,
    RequestError,
    RerankResult,
    Stage,
    StageUsage,
    calibrate_escalation,
    rerank,
    rerank_cascade,
    validate_candidates,
)
from .progress import Progress
from .request import FieldNames, RerankRequest, validate_escalation_settings
from .request import Path as FieldPath
from .specs import TrecData, load_comparator


def _cli_rename(path: FieldPath, request: RerankRequest | None) -> str | None:
    head = path[0]
    if head == "escalation":  # the calibration's settings: --escalate-alpha, --escalate-delta, ...
        return f"--escalate-{path[1] if len(path) > 1 else 'alpha'}"
    if path[-1] == "escalation_threshold":
        return "--escalate-threshold"
    if head == "options":
        return "--" + str(path[-1] if path[1:] != ("budget",) else "budget").replace("_", "-")
    return {"stages": "--stage", "models": "--model", "top_n": "--top-n"}.get(str(head))


#: ``rerank rank``'s names of the request's fields: options are flags (``--window``), a cascade's stages
#: ``--stage``; query and candidates keep the input's field names (``candidates[3].text``).
CLI_NAMES = FieldNames("cli", _cli_rename)

T = TypeVar("T")


# --- 1. inputs ------------------------------------------------------------------------------------------
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
    if not isinstance(query, str):
        raise InputError(line, '"query" must be a string')
    if not isinstance(cands, list):
        raise InputError(line, '"candidates" must be a list')
    out: list[Candidate] = []
    for i, c in enumerate(cands):
        if not isinstance(c, dict) or "id" not in c or "text" not in c:
            raise InputError(line, f'candidates[{i}] must be an object with "id" and "text"')
        cid, text = c["id"], c["text"]
        if isinstance(cid, bool) or not isinstance(cid, str | int):
            raise InputError(line, f'candidates[{i}].id must be a non-empty string or an integer')
        if not isinstance(text, str):
            raise InputError(line, f"candidates[{i}].text must be a string")
        out.append(Candidate(str(cid), text))
    try:  # the content rules (blank texts, duplicate ids) are the request's, checked in one place
        validate_candidates(query, out)
    except RequestError as exc:
        raise InputError(line, str(CLI_NAMES.error(exc))) from None
    return QueryJob(str(qid), query, out)


def read_jsonl_jobs(lines: Iterable[str], *, skip_bad: bool, warn: IO[str]) -> Iterator[QueryJob]:
    """Jobs from JSON lines; a malformed line or a qid seen before raises :class:`InputError` or, with
    ``skip_bad``, is reported on ``warn`` by line number and skipped."""
    try:
        yield from _jsonl_jobs(numbered_lines(lines), skip_bad, warn)
    except NotUTF8Error as exc:
        raise InputError(0, str(exc)) from None


def _jsonl_jobs(lines: Iterable[tuple[int, str]], skip_bad: bool, warn: IO[str]) -> Iterator[QueryJob]:
    first_line: dict[str, int] = {}
    for number, raw in lines:
        text = raw.strip()
        if not text:
            continue
        try:
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(number, f"not valid JSON ({exc.msg})") from None
            job = _parse_job(row, number)
            if job.qid in first_line:
                raise InputError(
                    number, f"qid {job.qid!r} repeats the query of line {first_line[job.qid]}; each qid must "
                            "appear once (rank a query once, or give the repeats their own qids)",
                )
            first_line[job.qid] = number
            yield job
        except InputError as exc:
            if not skip_bad:
                raise
            warn.write(f"rerank: warning: skipped {exc}\n")


def trec_qids(run: Mapping[str, object], queries: Mapping[str, str], warn: IO[str]) -> list[str]:
    """The run's queries in qid order that the queries file has; the others are skipped with a note
    (a queries file may list a subset); none in common is an error."""
    qids = sorted(run, key=qid_key)
    kept = [q for q in qids if q in queries]
    if not kept:
        raise InputError(0, f"none of the run's {len(qids)} queries is in the queries file")
    if len(kept) < len(qids):
        missing = [q for q in qids if q not in queries]
        warn.write(f"rerank: note: {len(missing)} of the run's {len(qids)} queries are not in the queries file "
                   f"and are skipped ({_some(missing, 5)}); ranking {len(kept)}\n")
    return kept


def trec_jobs(
    qids: Iterable[str],
    run: Mapping[str, Mapping[str, float]],
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    depth: int,
) -> Iterator[QueryJob]:
    """Jobs from a TREC run: the top ``depth`` documents of each of ``qids`` (trec_eval order) re-ranked."""
    from .evaluation import rank_docs

    for qid in qids:
        docs = rank_docs(run[qid])
        top = docs[:depth]
        missing = [d for d in top if d not in corpus]
        if missing:
            raise InputError(0, f"query {qid!r}: document {missing[0]!r} of the run is not in the corpus")
        cands = [Candidate(d, corpus[d]) for d in top if corpus[d].strip()]
        empty = tuple(d for d in top if not corpus[d].strip())  # empty texts cannot be compared: keep in place
        yield QueryJob(qid, queries[qid], cands, empty + tuple(docs[depth:]))


def qid_key(qid: str) -> tuple[int, int | str]:
    """Sort key of TREC qids: numeric ones by value first, then the others by name."""
    return (0, int(qid)) if qid.isdigit() else (1, qid)


def _some(qids: Sequence[str], n: int) -> str:
    return ", ".join(qids[:n]) + (", ..." if len(qids) > n else "")


@dataclass
class Selection:
    """``--qids`` and ``--max-queries``: which queries of the input to rank (None = all), and what was left
    out, for the notes and errors of :meth:`report`."""

    qids: frozenset[str] | None = None
    max_queries: int | None = None
    found: set[str] = field(default_factory=set)
    not_named: int = 0
    stopped: bool = False

    def apply(self, items: Iterable[T], qid: Callable[[T], str]) -> Iterator[T]:
        for item in items:
            if self.max_queries is not None and len(self.found) >= self.max_queries:
                self.stopped = True
                return
            if self.qids is not None and qid(item) not in self.qids:
                self.not_named += 1
                continue
            self.found.add(qid(item))
            yield item

    def report(self, warn: IO[str]) -> None:
        """Write notes on what was left out; raise :class:`InputError` for ``--qids`` the input lacks."""
        if self.not_named:
            warn.write(f"rerank: note: skipped {self.not_named} queries of the input not named by --qids\n")
        if self.stopped:
            warn.write(f"rerank: note: stopped after --max-queries {self.max_queries}; "
                       "the queries after them were not ranked\n")
        missing = sorted(self.qids - self.found, key=qid_key) if self.qids and not self.stopped else []
        if missing:
            raise InputError(0, f"--qids names {len(missing)} queries that are not in the input: {_some(missing, 10)}")


# --- 2. the record: set-up and progress -----------------------------------------------------------------
def run_setup(mode: str, models: Sequence[str], options: RankOptions, **extra: Any) -> dict[str, Any]:
    """The set-up of a run, keyed by command-line flag: every option that changes what is written."""
    values = {**dataclasses.asdict(options), **extra}
    flags = {f"--{name.replace('_', '-')}": value for name, value in values.items()}
    return json.loads(json.dumps({"mode": mode, "--model": list(models), **flags}))  # as read back from disk


class SetupMismatchError(ValueError):
    """A resume under another set-up than the one recorded; names the differing options."""


def _differences(recorded: Mapping[str, Any], setup: Mapping[str, Any]) -> list[str]:
    """The options whose values differ (an option one side lacks counts as unset)."""
    return [k for k in dict.fromkeys([*recorded, *setup]) if recorded.get(k) != setup.get(k)]


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return json.dumps(value) if isinstance(value, dict) else str(value)


@dataclass(frozen=True)
class BlockRecord:
    """One finished query in ``<out>.progress``: its block ends at byte ``offset`` of the output, is ``length``
    bytes long and hashes to ``sha256``."""

    qid: str
    offset: int
    length: int
    sha256: str

    def line(self) -> str:
        return json.dumps(dataclasses.asdict(self)) + "\n"


class ResumableOutput:
    """Appends one block per finished query and records it in ``<out>.progress``.

    The progress file's first line is the run's set-up (:func:`run_setup`); each further line a
    :class:`BlockRecord` (qid, end offset, byte length and SHA-256 of the block). A rerun under the same set-up
    checks the output against the records: it keeps the longest run of intact blocks, drops the rest (a block
    cut off mid-write, a copy cut short, changed bytes; ``note`` says how many queries are ranked again) and
    skips the queries kept, so an interrupted run keeps every finished query and the file is never extended
    with anything but whole blocks. Under another set-up it raises :class:`SetupMismatchError` (``overwrite``
    starts afresh).

    Nothing is created, truncated or replaced before the first block is written (or :meth:`finish` is
    called), so a run that fails on its input first leaves the files as they were.
    """

    def __init__(self, path: Path, setup: Mapping[str, Any], *, overwrite: bool = False) -> None:
        self.path, self.setup, self.overwrite = path, dict(setup), overwrite
        self.progress_path = path.with_name(path.name + ".progress")
        self.records: list[BlockRecord] = []
        self.note = ""  # what the resume check dropped, for the user
        self._out: IO[bytes] | None = None
        self._progress: IO[str] | None = None
        if overwrite:
            pass
        elif self.progress_path.exists():
            recorded, lines = self._read_progress()
            if lines and (recorded is None or _differences(recorded, setup)):
                raise SetupMismatchError(self._mismatch(recorded, setup, len(lines)))
            self.records = self._intact(lines)
        elif self.path.exists() and self.path.stat().st_size > 0:
            raise FileExistsError(
                f"{self.path} exists and has no {self.progress_path.name}; use --overwrite to replace it"
            )
        self.done: set[str] = {r.qid for r in self.records}

    def _read_progress(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        lines = self.progress_path.read_text(encoding="utf-8", errors="replace").splitlines()
        recorded: dict[str, Any] | None = None
        records: list[dict[str, Any]] = []
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                break  # a progress line cut off mid-write: everything before it is still valid
            if not isinstance(record, dict):
                break
            if number == 0 and "setup" in record:
                recorded = dict(record["setup"])
            else:
                records.append(record)
        return recorded, records

    def _intact(self, lines: list[dict[str, Any]]) -> list[BlockRecord]:
        """The records whose blocks the output holds byte for byte, up to the first that it does not."""
        intact: list[BlockRecord] = []
        end = 0
        try:
            handle: IO[bytes] | None = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            handle = None
        try:
            for line in lines:
                try:
                    record = BlockRecord(str(line["qid"]), int(line["offset"]), int(line["length"]),
                                         str(line["sha256"]))
                except (KeyError, TypeError, ValueError):
                    break  # unreadable, or written by a rerank that recorded no hash: cannot be checked
                if handle is None or record.offset - record.length != end or record.length <= 0:
                    break
                block = handle.read(record.length)
                if len(block) != record.length or hashlib.sha256(block).hexdigest() != record.sha256:
                    break
                intact.append(record)
                end = record.offset
        finally:
            if handle is not None:
                handle.close()
        lost = len(lines) - len(intact)
        if lost:
            size = self.path.stat().st_size if handle is not None else 0
            needed = max((int(r.get("offset", 0)) for r in lines if isinstance(r.get("offset"), int)), default=0)
            self.note = (f"{lost} of the {len(lines)} queries recorded in {self.progress_path.name} are missing or "
                         f"damaged in {self.path.name} ({size:,} bytes; the records end at byte {needed:,}): "
                         f"kept the first {len(intact)}, ranking the others again")
        return intact

    def _mismatch(self, recorded: dict[str, Any] | None, setup: Mapping[str, Any], count: int) -> str:
        head = f"cannot resume {self.path}: {self.progress_path.name}"
        advice = "rerun with the recorded options, or use --overwrite to start afresh"
        if recorded is None:
            return f"{head} records no set-up (an older rerank wrote it); {advice}"
        diffs = "; ".join(f"{k} {_show(recorded.get(k))} (now {_show(setup.get(k))})"
                          for k in _differences(recorded, setup))
        return f"{head} records {count} queries ranked with another set-up: {diffs}; {advice}"

    def _open(self) -> None:
        """Cut the output to its intact blocks (never longer) and rewrite the record to match them."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        end = self.records[-1].offset if self.records else 0
        out = open(self.path, "wb" if self.overwrite or not self.path.exists() else "r+b")  # noqa: SIM115
        out.truncate(end)
        out.seek(end)
        out.flush()
        os.fsync(out.fileno())
        self._out = out
        write_text_atomic(str(self.progress_path),
                          json.dumps({"setup": self.setup}) + "\n" + "".join(r.line() for r in self.records))
        self._progress = open(self.progress_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, qid: str, text: str) -> None:
        if self._out is None:
            self._open()
        assert self._out is not None and self._progress is not None
        block = text.encode("utf-8")
        self._out.write(block)
        self._out.flush()
        os.fsync(self._out.fileno())
        record = BlockRecord(qid, self._out.tell(), len(block), hashlib.sha256(block).hexdigest())
        self._progress.write(record.line())
        self._progress.flush()
        self.records.append(record)
        self.done.add(qid)

    def finish(self) -> None:
        """A run that ended well: the files exist and match the records even if nothing was written now."""
        if self._out is None:
            self._open()

    def close(self) -> None:
        for handle in (self._out, self._progress):
            if handle is not None:
                handle.close()


@dataclass(frozen=True)
class EscalationSettings:
    """``rerank rank --escalate-alpha``: selective escalation in a cascade's last stage, calibrated on the first
    ``queries`` queries; ``reference`` ``strong`` (the last stage's answers) or ``qrels`` (human grades); ``unit``
    ``query`` (the guarantee is for the pooled agreement of the queries after the calibration ones) or ``pair``
    (:func:`rerank.pipeline.calibrate_escalation`). With ``threshold`` (``--escalate-threshold``, calibrated
    before) nothing is calibrated."""

    alpha: float | None
    delta: float = 0.1
    queries: int = 10
    reference: str = "strong"
    threshold: float | None = None
    unit: str = "query"


def escalate_last_stage(
    jobs: Sequence[QueryJob], stages: Sequence[Stage], options: RankOptions, settings: EscalationSettings,
    grades: Mapping[tuple[str, str], float] | None = None, warn: IO[str] | None = None,
) -> list[Stage]:
    """The cascade with selective escalation in its last stage: the stage before it is the cheap judge, the
    threshold is calibrated on the first ``settings.queries`` jobs (:func:`rerank.pipeline.calibrate_escalation`)
    and reported on ``warn``. ``grades`` ((query text, passage text) -> grade) is the reference for ``qrels``.
    The settings and the threshold are checked in one place (:mod:`rerank.request`: ``validate_escalation_settings``
    by the command, the stage's threshold by every request)."""
    cheap = stages[-2] if len(stages) > 1 else stages[-1]
    if settings.threshold is not None or settings.alpha is None:
        threshold = float("inf") if settings.threshold is None else settings.threshold
        escalation = Escalation(cheap.model, threshold, cheap.name)
        return [*stages[:-1], dataclasses.replace(stages[-1], escalation=escalation)]
    validate_escalation_settings(settings.alpha, settings.delta, settings.queries, settings.reference, len(stages),
                                 bool(grades))
    calibration = [(job.query, job.candidates) for job in jobs[: settings.queries]]
    after = len(jobs) - len(calibration)  # the queries outside the calibration set that this run ranks
    found = calibrate_escalation(calibration, stages, cheap.model, options, alpha=settings.alpha,
                                 delta=settings.delta, grades=grades if settings.reference == "qrels" else None,
                                 unit=settings.unit, new_queries=after if after > 0 else None)
    if warn is not None:
        what = (f"threshold {found.threshold:.3f} (calibration pairs {found.calibration_items}, {found.kept} kept, "
                f"{found.disagreements} disagreeing, p {found.p_value:.3g})" if found.threshold != float("inf") else
                f"no threshold passed on {found.calibration_items} calibration pairs: every pair escalates")
        warn.write(f"rerank: escalation {what}; alpha {settings.alpha}, delta {settings.delta}, reference "
                   f"{settings.reference}, {len(calibration)} calibration queries, unit {settings.unit}\n")
    return [*stages[:-1], dataclasses.replace(stages[-1], escalation=Escalation(cheap.model, found.threshold,
                                                                                cheap.name))]


# --- 3. the loop ----------------------------------------------------------------------------------------
def jsonl_record(job: QueryJob, result: RerankResult) -> str:
    ranking = [{"id": r.id, "score": r.score, "rank": i} for i, r in enumerate(result.results, start=1)]
    return json.dumps({
        "qid": job.qid,
        "ranking": ranking,
        "comparisons": result.usage.comparisons,
        "order_inconsistency": result.usage.order_inconsistency,
        "transitive_inconsistency": result.usage.transitive_inconsistency,
        "partial": result.usage.partial,
        "truncated_items": result.usage.truncated_items,
        "tokenize_ms": round(result.usage.tokenize_ms, 3),
        "run_ms": round(result.usage.run_ms, 3),
        **({"candidates_shown": result.usage.candidates_shown, "tokens": result.usage.tokens}
           if result.usage.candidates_shown else {}),  # a setwise model: K-wise calls are comparisons
        **({"stages": stage_records(result.stages)} if result.stages else {}),
        **({"fusion_weights": result.fusion_weights} if result.fusion_weights is not None else {}),
    }) + "\n"


def stage_records(stages: Sequence[StageUsage]) -> list[dict[str, Any]]:
    """The stages as JSON-ready dicts; an escalation threshold of ``inf`` (no threshold passed the calibration
    test: every pair escalated) is written as null beside ``cheap_answered`` 0."""
    records = [dataclasses.asdict(s) for s in stages]
    for record in records:
        if record["escalation_threshold"] == float("inf"):
            record["escalation_threshold"] = None
    return records


def trec_record(job: QueryJob, result: RerankResult, tag: str) -> str:
    """Re-ranked documents first, then the rest of the run in its order; scores decrease with rank."""
    ids = [r.id for r in result.results] + list(job.rest)
    n = len(ids)
    return "".join(f"{job.qid} Q0 {d} {rank} {n - rank + 1} {tag}\n" for rank, d in enumerate(ids, start=1))


def rank_query(
    job: QueryJob, models: Sequence[Comparator], options: RankOptions, top_n: int | None,
    stages: Sequence[Stage] | None = None,
) -> RerankResult:
    """One query through the pipeline (or the cascade of ``stages``); a request the pipeline refuses is an
    ``InputError`` naming the query."""
    try:
        if stages:
            return rerank_cascade(job.query, job.candidates, stages, options, top_n=top_n)
        return rerank(job.query, job.candidates, models, options, top_n=top_n)
    except RequestError as exc:
        raise InputError(0, f"query {job.qid!r}: {CLI_NAMES.error(exc)}") from None


MapJobs = Callable[[Iterable[QueryJob]], Iterator[tuple[QueryJob, RerankResult]]]


@dataclass(frozen=True)
class QueryRanker:
    """The per-worker state of ``rerank rank --engine ray`` (:func:`rerank.distributed.ray_mapper` with
    method ``"rank"``): loads the models once, then ranks one query as the local engine does."""

    specs: tuple[str, ...]
    options: RankOptions
    top_n: int | None = None
    batch_size: int | None = None
    trec: TrecData | None = None  # only the oracle reads it

    def __call__(self) -> _LoadedRanker:
        return _LoadedRanker(self, [load_comparator(s, trec=self.trec, max_batch_size=self.batch_size)
                                    for s in self.specs])


class _LoadedRanker:
    def __init__(self, spec: QueryRanker, models: list[Comparator]) -> None:
        self.spec, self.models = spec, models

    def rank(self, job: QueryJob) -> RerankResult:
        return rank_query(job, self.models, self.spec.options, self.spec.top_n)


def rank_jobs(
    jobs: Iterable[QueryJob],
    models: Sequence[Comparator],
    options: RankOptions,
    output: ResumableOutput,
    *,
    trec_tag: str | None = None,
    top_n: int | None = None,
    total: int | None = None,
    already: int = 0,
    progress_stream: IO[str] | None = None,
    map_jobs: MapJobs | None = None,
    stages: Sequence[Stage] | None = None,
    quiet: bool = False,
) -> int:
    """Rank every job not already in ``output``; returns the number ranked now. ``total`` and ``already``
    (jobs of ``total`` done before) feed the progress report (:class:`rerank.progress.Progress` on
    ``progress_stream``, stderr by default; ``quiet``: none). With ``stages`` (a cascade) ``models`` is unused.

    ``map_jobs`` (e.g. a pool of Ray actors, :mod:`rerank.distributed`) turns the jobs left into
    ``(job, result)`` pairs in any order, with ``top_n`` as given here; by default this process ranks them
    one by one. Only this function writes ``output``."""
    progress = Progress(total, desc="rank", unit="queries", initial=already, stream=progress_stream, quiet=quiet)
    ranked = 0
    if map_jobs is None:
        keep = top_n if trec_tag is None else None
        map_jobs = lambda todo: ((job, rank_query(job, models, options, keep, stages)) for job in todo)  # noqa: E731
    try:
        for job, result in map_jobs(job for job in jobs if job.qid not in output.done):
            text = trec_record(job, result, trec_tag) if trec_tag else jsonl_record(job, result)
            output.write(job.qid, text)
            ranked += 1
            progress.update(1, comparisons=result.usage.comparisons)
    finally:
        progress.close()
    return ranked
