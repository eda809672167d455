"""``manifest.json`` of an index folder: which model embedded it, how, and what it holds.

Layout of an index folder::

    manifest.json   this file (format ``rerank-index``); ``files`` holds the sha256 of the two files below
    index.faiss     the FAISS index (CPU form; inner product on L2-normalised vectors), row i = docstore row i
    docs.sqlite     the document store: row -> id, text, metadata (see ``docstore.py``)

Opening an index verifies the two files against ``files`` once (:func:`verify_files`), so a corrupted file is
an error, not garbage scores. The check costs about as much as reading the index (bench/index_verify_bench.py:
2.4 s for 810 MB against 3.0 s for the rest of opening), so huge indexes may skip it (``--no-verify``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import CorruptIndexError, DimensionMismatchError, IndexModelMismatchError, NotAnIndexError

log = logging.getLogger("rerank.retrieval")

MANIFEST_FILE = "manifest.json"
INDEX_FILE = "index.faiss"
DOCSTORE_FILE = "docs.sqlite"
FORMAT = "rerank-index"
FORMAT_VERSION = 1


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class ModelRef:
    """The embedding model's identity: name, weights checksum (``source_sha256`` of its model manifest),
    graph variant and checksum, dimension and the passage token budget the corpus was embedded with."""

    name: str
    source_sha256: str
    variant: str | None
    graph_sha256: str | None
    dim: int
    max_query_tokens: int | None = None
    max_passage_tokens: int | None = None

    @classmethod
    def from_model(cls, model: Any, dim: int | None = None) -> ModelRef:
        """Read the identity of a loaded bi-encoder (a ``PairwiseModel``, or anything with ``name`` and
        ``spec``; ``path`` pointing to an exported model folder gives the checksums)."""
        from rerank.models import Manifest
        from rerank.models.errors import CorruptModelError
        from rerank.models.manifest import sha256_weights

        source_sha, graph_sha = "", None
        variant = getattr(model, "variant", None)
        path = getattr(model, "path", None)
        if path is not None and (Path(path) / "manifest.json").is_file():
            try:
                manifest = Manifest.read(path)
                source_sha = manifest.source_sha256
                if variant in manifest.variants:
                    graph_sha = manifest.variants[variant].sha256
            except CorruptModelError as exc:
                log.warning("cannot read the model manifest at %s: %s", path, exc)
        elif path is not None and Path(path).is_dir():
            try:
                source_sha = sha256_weights(Path(path))[0]
            except OSError:
                source_sha = ""
        spec = model.spec
        if dim is None:
            dim = int(spec.options.get("embedding_dim") or 0) or None
        if dim is None:
            dim = int(model.embed(["dimension probe"], role="query").shape[1])
        return cls(
            name=str(model.name),
            source_sha256=source_sha,
            variant=variant,
            graph_sha256=graph_sha,
            dim=int(dim),
            max_query_tokens=getattr(spec, "max_query_tokens", None),
            max_passage_tokens=getattr(spec, "max_passage_tokens", None),
        )

    def check_serves(self, serving: ModelRef, where: str) -> None:
        """Raise ``IndexModelMismatchError`` unless ``serving`` is the model this index was embedded with."""
        if serving.name != self.name:
            raise IndexModelMismatchError(
                f"index {where} was embedded with model {self.name!r}, not {serving.name!r}; search it with "
                f"{self.name!r} or rebuild it with {serving.name!r}"
            )
        if self.source_sha256 and serving.source_sha256 and serving.source_sha256 != self.source_sha256:
            raise IndexModelMismatchError(
                f"index {where} was embedded with {self.name!r} weights sha256 {self.source_sha256[:12]}…, but "
                f"the model loaded now has {serving.source_sha256[:12]}… (other weights under the same name); "
                "rebuild the index"
            )
        if not (self.source_sha256 and serving.source_sha256) and (
            self.graph_sha256 and serving.graph_sha256 and self.graph_sha256 != serving.graph_sha256
        ):
            raise IndexModelMismatchError(
                f"index {where} was embedded with a {self.name!r} graph of sha256 {self.graph_sha256[:12]}…, "
                f"the model loaded now has {serving.graph_sha256[:12]}…; rebuild the index"
            )
        if serving.dim != self.dim:
            raise DimensionMismatchError(
                f"index {where} holds {self.dim}-d vectors but model {serving.name!r} gives {serving.dim}-d"
            )
        if serving.variant != self.variant:
            log.warning(
                "index %s was embedded with the %s variant of %s; queries use %s", where, self.variant,
                self.name, serving.variant,
            )


@dataclass(frozen=True)
class CorpusRecord:
    """One corpus file that went into the index (build or add)."""

    path: str
    sha256: str
    documents: int
    skipped_empty: int
    added: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CorpusRecord:
        return cls(str(data["path"]), str(data["sha256"]), int(data["documents"]),
                   int(data.get("skipped_empty", 0)), str(data.get("added", "")))


@dataclass(frozen=True)
class IndexManifest:
    """What an index folder holds; ``count`` = vectors in ``index.faiss`` = rows in ``docs.sqlite``."""

    model: ModelRef
    index_type: str
    params: Mapping[str, Any]
    dim: int
    count: int
    corpora: Sequence[CorpusRecord] = ()
    metric: str = "inner_product"
    normalized: bool = True
    created: str = field(default_factory=now)
    updated: str = field(default_factory=now)
    versions: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)  # file name -> sha256 (empty: an older index)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "model": asdict(self.model),
            "index_type": self.index_type,
            "params": dict(self.params),
            "dim": self.dim,
            "count": self.count,
            "metric": self.metric,
            "normalized": self.normalized,
            "corpora": [asdict(c) for c in self.corpora],
            "created": self.created,
            "updated": self.updated,
            "versions": dict(self.versions),
            "files": dict(self.files),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexManifest:
        model = dict(data["model"])
        return cls(
            model=ModelRef(
                name=str(model["name"]),
                source_sha256=str(model.get("source_sha256") or ""),
                variant=model.get("variant"),
                graph_sha256=model.get("graph_sha256"),
                dim=int(model["dim"]),
                max_query_tokens=model.get("max_query_tokens"),
                max_passage_tokens=model.get("max_passage_tokens"),
            ),
            index_type=str(data["index_type"]),
            params=dict(data.get("params") or {}),
            dim=int(data["dim"]),
            count=int(data["count"]),
            corpora=tuple(CorpusRecord.from_dict(c) for c in data.get("corpora") or ()),
            metric=str(data.get("metric", "inner_product")),
            normalized=bool(data.get("normalized", True)),
            created=str(data.get("created", "")),
            updated=str(data.get("updated", "")),
            versions=dict(data.get("versions") or {}),
            files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
            format=str(data.get("format", "")),
            format_version=int(data.get("format_version", FORMAT_VERSION)),
        )

    def write(self, folder: str | os.PathLike[str]) -> Path:
        path = Path(folder) / MANIFEST_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: str | os.PathLike[str]) -> IndexManifest:
        """Read and check the manifest; ``NotAnIndexError`` when the folder holds no index."""
        folder = Path(folder)
        if not folder.exists():
            raise NotAnIndexError(f"index folder {folder} does not exist")
        if not folder.is_dir():
            raise NotAnIndexError(f"{folder} is not a folder, so not an index")
        path = folder / MANIFEST_FILE
        if not path.is_file():
            raise NotAnIndexError(f"{folder} is not an index: no {MANIFEST_FILE} (build one with `rerank index build`)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise NotAnIndexError(f"{folder} is not an index: {MANIFEST_FILE} is unreadable ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise NotAnIndexError(f"{folder} is not an index: {MANIFEST_FILE} is not of the {FORMAT!r} format")
        try:
            manifest = cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise NotAnIndexError(f"{folder}: {MANIFEST_FILE} is incomplete or malformed ({exc!r})") from None
        if manifest.format_version > FORMAT_VERSION:
            raise NotAnIndexError(
                f"{folder}: index format {manifest.format_version} is newer than this code ({FORMAT_VERSION})"
            )
        return manifest


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of the index's data files, for ``IndexManifest.files``."""
    from rerank.models.manifest import sha256_file

    return {name: sha256_file(folder / name) for name in (INDEX_FILE, DOCSTORE_FILE)}


def verify_files(folder: Path, manifest: IndexManifest) -> None:
    """``CorruptIndexError`` unless the data files match the checksums the manifest records (an index
    written before checksums were recorded is opened with a warning)."""
    if not manifest.files:
        log.warning("index %s records no checksums (written by an older rerank): its files are not verified; "
                    "rebuild it to add them", folder)
        return
    from rerank.models.manifest import sha256_file

    for name, recorded in sorted(manifest.files.items()):
        path = folder / name
        if not path.is_file():
            raise CorruptIndexError(f"index {folder}: {name} is missing")
        actual = sha256_file(path)
        if actual != recorded:
            raise CorruptIndexError(
                f"index {folder}: {name} does not match the checksum in {MANIFEST_FILE} (sha256 {actual[:12]}…, "
                f"recorded {recorded[:12]}…): the file is corrupted or was changed outside rerank; rebuild the "
                "index or restore the folder"
            )
