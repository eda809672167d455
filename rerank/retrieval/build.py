"""Building an index folder from a corpus, and adding documents to one; both all-or-nothing.

Every write goes to a hidden temporary folder next to the target (``.NAME.tmp-PID-XXXX``) that replaces the
target only when complete: a new folder is renamed into place; an existing one is swapped with
``renameat2(RENAME_EXCHANGE)`` where the kernel and file system offer it (else two renames, with a window of
microseconds in which the folder is missing). An interrupted build or add leaves the old index as it was.
Writers of folders under the same parent are serialised by an advisory lock on the parent folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rerank.models.versions import library_versions

from ..progress import Progress
from .corpus import Corpus, read_documents
from .docstore import DocStore
from .embed import DEFAULT_BATCH_SIZE, EmbedBatch, MapBatches, embed_batch, embed_texts
from .errors import DimensionMismatchError, DuplicateIdError, NotAnIndexError, RetrievalError
from .index import (
    check_consistent,
    load_embedding_model,
    make_index,
    read_faiss,
    resolve_params,
    train_index,
)
from .manifest import (
    DOCSTORE_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    CorpusRecord,
    IndexManifest,
    ModelRef,
    checksums,
    now,
    verify_files,
)

log = logging.getLogger("rerank.retrieval")


@dataclass(frozen=True)
class BuildReport:
    """What a build or an add did. ``up_to_date``: the index already held this corpus; nothing was done."""

    path: Path
    index_type: str
    params: Mapping[str, Any]
    count: int
    added: int
    skipped_empty: int
    embed_s: float
    index_s: float
    up_to_date: bool = False

    @property
    def docs_per_s(self) -> float:
        """Documents per second, embedding and indexing together."""
        total = self.embed_s + self.index_s
        return self.added / total if total > 0 else 0.0


# --- folder helpers -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _writer_lock(target: Path) -> Iterator[None]:
    """Exclusive advisory lock on the target's parent folder (created if missing) for one build/add."""
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _clean_stale(target: Path) -> None:
    """Remove temporary folders of this target left by processes that no longer run."""
    for p in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            pid = int(p.name.rsplit(".tmp-", 1)[1].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (ValueError, IndexError, PermissionError, OSError):
            continue


def _temp_dir(target: Path) -> Path:
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    return tmp


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _put_in_place(tmp: Path, target: Path) -> None:
    """Move the complete folder ``tmp`` to ``target``, replacing what is there; ``tmp`` is gone after."""
    if not target.exists():
        os.rename(tmp, target)
    elif _exchange(tmp, target):
        shutil.rmtree(tmp)  # now holds the old folder
    else:
        old = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_target(out: Path) -> IndexManifest | None:
    """The manifest of an existing index at ``out``; None when ``out`` is absent or an empty folder."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise RetrievalError(f"{out} exists and is not a folder; choose another output folder")
    if not any(out.iterdir()):
        return None
    if not (out / MANIFEST_FILE).is_file():
        raise RetrievalError(
            f"{out} is a folder that holds something else than an index; not touching it (choose another output)"
        )
    return IndexManifest.read(out)


def _write_folder(
    folder: Path,
    faiss_index: Any,
    manifest: IndexManifest,
    docstore_source: DocStore | None,
    rows: list[tuple[int, str, str, Mapping[str, Any]]],
) -> None:
    import faiss

    faiss.write_index(faiss_index, str(folder / INDEX_FILE))
    if docstore_source is not None:
        docstore_source.copy_to(folder / DOCSTORE_FILE)
        store = DocStore(folder / DOCSTORE_FILE, readonly=False)
    else:
        store = DocStore(folder / DOCSTORE_FILE, create=True)
    with store:
        store.add(rows)
    replace(manifest, files=checksums(folder)).write(folder)
    _fsync_tree(folder)


def _write_index(
    target: Path,
    faiss_index: Any,
    manifest: IndexManifest,
    docstore_source: DocStore | None,
    rows: list[tuple[int, str, str, Mapping[str, Any]]],
) -> None:
    """Write a complete index folder beside ``target``, then put it in place: an interruption leaves
    ``target`` as it was and no temporary folder behind."""
    tmp = _temp_dir(target)
    try:
        _write_folder(tmp, faiss_index, manifest, docstore_source, rows)
        _put_in_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _resolve_model(model: Any, store: Any) -> Any:
    return load_embedding_model(model, store) if model is None or isinstance(model, str) else model


def _record(corpus: Corpus, added: int) -> CorpusRecord:
    return CorpusRecord(str(corpus.path.resolve()), corpus.sha256, added, len(corpus.skipped_empty), now())


@dataclass(frozen=True)
class TextEmbedder:
    """The per-worker state of ``rerank index build --engine ray`` (:func:`rerank.distributed.ray_mapper` with
    method ``"embed"``): ``model.embed`` on one batch of texts (the same batches as the local engine)."""

    spec: str
    store: str | None = None

    def __call__(self) -> _LoadedEmbedder:
        return _LoadedEmbedder(load_embedding_model(self.spec, self.store))


class _LoadedEmbedder:
    def __init__(self, model: Any) -> None:
        self.model = model

    def embed(self, batch: EmbedBatch) -> Any:
        return embed_batch(self.model, batch)


# --- build ----------------------------------------------------------------------------------------------
def build_index(
    corpus: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: Any = "minilm",
    *,
    index_type: str = "flat",
    params: Mapping[str, Any] | None = None,
    skip_empty: bool = False,
    force: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    store: Any = None,
    map_batches: MapBatches | None = None,
) -> BuildReport:
    """Embed ``corpus`` (JSONL) with ``model`` (a bi-encoder or its name) and write an index folder ``out``.

    Re-running on the same corpus with the same model, type and parameters finds the index up to date and
    returns at once (``force`` rebuilds). An existing index at ``out`` is replaced only once the new one is
    complete. Raises ``CorpusError`` on bad input, ``ValueError`` on bad parameters."""
    out = Path(out)
    docs = read_documents(corpus, skip_empty=skip_empty)
    model = _resolve_model(model, store)
    ref = ModelRef.from_model(model)
    n = len(docs.documents)
    resolved = resolve_params(index_type, n, ref.dim, params)
    with _writer_lock(out):
        _clean_stale(out)
        existing = _check_target(out)
        if (
            existing is not None and not force
            and existing.model == ref and existing.index_type == index_type and dict(existing.params) == resolved
            and len(existing.corpora) == 1 and existing.corpora[0].sha256 == docs.sha256
            and existing.corpora[0].skipped_empty == len(docs.skipped_empty) and existing.count == n
        ):
            log.info("index %s is up to date", out)
            return BuildReport(out, index_type, resolved, existing.count, 0, len(docs.skipped_empty), 0.0, 0.0,
                               up_to_date=True)
        t0 = time.perf_counter()
        vectors = embed_texts(model, [d.text for d in docs.documents], batch_size=batch_size, progress=progress,
                              map_batches=map_batches)
        embed_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        faiss_index = make_index(index_type, ref.dim, resolved)
        train_index(faiss_index, vectors, resolved)
        faiss_index.add(vectors)
        manifest = IndexManifest(
            model=ref, index_type=index_type, params=resolved, dim=ref.dim, count=n,
            corpora=(_record(docs, n),), versions=library_versions("faiss", "rerank", "numpy"),
        )
        rows = [(i, d.id, d.text, d.meta) for i, d in enumerate(docs.documents)]
        _write_index(out, faiss_index, manifest, None, rows)
        index_s = time.perf_counter() - t1
    return BuildReport(out, index_type, resolved, n, n, len(docs.skipped_empty), embed_s, index_s)


# --- add ------------------------------------------------------------------------------------------------
def add_documents(
    index_dir: str | os.PathLike[str],
    corpus: str | os.PathLike[str],
    model: Any = None,
    *,
    skip_empty: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    store: Any = None,
    verify: bool = True,
    map_batches: MapBatches | None = None,
) -> BuildReport:
    """Append the documents of ``corpus`` to the index at ``index_dir``.

    Ids must be new: a duplicate raises ``DuplicateIdError`` (file, line, id) and nothing is written. ``model``
    None loads the model the manifest names; another model raises ``IndexModelMismatchError``. IVF indexes
    keep their trained lists (no retraining). ``verify``: check the files against the manifest's checksums
    first (``CorruptIndexError``), so a corrupted index is not extended and re-checksummed.

    A server that has the index open (``rerank serve --index``) does not see the new documents until it is
    restarted."""
    index_dir = Path(index_dir)
    IndexManifest.read(index_dir)  # NotAnIndexError before reading a large corpus
    docs = read_documents(corpus, skip_empty=skip_empty)
    with _writer_lock(index_dir):
        _clean_stale(index_dir)
        manifest = IndexManifest.read(index_dir)
        model = _resolve_model(model if model is not None else manifest.model.name, store)
        ref = ModelRef.from_model(model)
        manifest.model.check_serves(ref, str(index_dir))
        if verify:
            verify_files(index_dir, manifest)
        with DocStore(index_dir / DOCSTORE_FILE) as current:
            faiss_index = read_faiss(index_dir / INDEX_FILE)
            check_consistent(index_dir, manifest, faiss_index, current)
            dupes = current.existing_ids(d.id for d in docs.documents)
            if dupes:
                first = next(d for d in docs.documents if d.id in dupes)
                more = f" (and {len(dupes) - 1} more)" if len(dupes) > 1 else ""
                raise DuplicateIdError(
                    f"{docs.path}:{first.line}: document id {first.id!r} is already in index {index_dir}{more}; "
                    "nothing was added"
                )
            t0 = time.perf_counter()
            vectors = embed_texts(model, [d.text for d in docs.documents], batch_size=batch_size,
                                  progress=progress, map_batches=map_batches)
            embed_s = time.perf_counter() - t0
            if vectors.shape[1] != manifest.dim:
                raise DimensionMismatchError(
                    f"model {ref.name!r} gave {vectors.shape[1]}-d vectors; index {index_dir} holds {manifest.dim}-d"
                )
            t1 = time.perf_counter()
            start = int(faiss_index.ntotal)
            faiss_index.add(vectors)
            n = len(docs.documents)
            updated = replace(
                manifest, count=start + n, corpora=(*manifest.corpora, _record(docs, n)), updated=now(),
                versions=library_versions("faiss", "rerank", "numpy"),
            )
            rows = [(start + i, d.id, d.text, d.meta) for i, d in enumerate(docs.documents)]
            _write_index(index_dir, faiss_index, updated, current, rows)
        index_s = time.perf_counter() - t1
    return BuildReport(index_dir, manifest.index_type, manifest.params, start + n, n, len(docs.skipped_empty),
                       embed_s, index_s)


def is_index(path: str | os.PathLike[str]) -> bool:
    try:
        IndexManifest.read(path)
        return True
    except NotAnIndexError:
        return False
