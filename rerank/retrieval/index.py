"""FAISS indexes (``flat``, ``hnsw``, ``ivf``, ``ivfpq``) and :class:`Index`, an index folder opened for search.

All index types use inner product on L2-normalised vectors (= cosine). Parameters (``params`` in the
manifest; ``None`` = chosen from the corpus size by :func:`resolve_params`):

| type | FAISS | build parameters | search parameters |
| --- | --- | --- | --- |
| ``flat`` | ``IndexFlatIP`` (exact) | | |
| ``hnsw`` | ``IndexHNSWFlat`` | ``M`` (32), ``efConstruction`` (80) | ``efSearch`` (128) |
| ``ivf`` | ``IndexIVFFlat`` | ``nlist`` (min(4 sqrt n, n / 39)), ``train_points`` | ``nprobe`` (nlist / 8) |
| ``ivfpq`` | ``IndexRefineFlat(IndexIVFPQ)`` | ``nlist``, ``pq_m`` (dim/8), ``nbits`` (8) | ``nprobe``, ``k_factor`` |

``ivfpq`` keeps the full vectors next to the PQ codes and re-scores ``k_factor * k`` PQ candidates with
exact inner products (``IndexRefineFlat``): the memory of ``flat`` plus codes, in exchange for recall.
IVF types are trained once, on the corpus they are built from (a sample of ``train_points`` vectors);
documents added later are assigned to the trained lists without retraining.

GPU: when ``faiss.get_num_gpus() > 0`` (a faiss-gpu build), ``flat``, ``ivf`` and ``ivfpq`` indexes are cloned
to GPU 0 for search (GPU searches are serialised by a lock; FAISS GPU indexes are not thread-safe); ``hnsw``
stays on the CPU (FAISS has no GPU HNSW). Indexes are always built and stored in CPU form.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .docstore import DocStore, StoredDoc
from .errors import CorruptIndexError, DimensionMismatchError, IndexClosedError, RetrievalError
from .manifest import DOCSTORE_FILE, INDEX_FILE, IndexManifest, ModelRef, verify_files

log = logging.getLogger("rerank.retrieval")
# FAISS logs at INFO which CPU build it loads and that a faster one is missing: noise on every first run
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

INDEX_TYPES = ("flat", "hnsw", "ivf", "ivfpq")
MIN_DOCS = {"flat": 1, "hnsw": 1, "ivf": 1, "ivfpq": 1000}
GPU_MAX_K = 2048  # FAISS GPU k-selection limit
_BUILD_KEYS = {
    "flat": set(),
    "hnsw": {"M", "efConstruction", "efSearch"},
    "ivf": {"nlist", "nprobe", "train_points"},
    "ivfpq": {"nlist", "nprobe", "pq_m", "nbits", "k_factor", "train_points"},
}
SEARCH_KEYS = {"flat": set(), "hnsw": {"efSearch"}, "ivf": {"nprobe"}, "ivfpq": {"nprobe", "k_factor"}}


def _faiss():
    import faiss

    return faiss


# --- parameters -----------------------------------------------------------------------------------------
def auto_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: about 4 sqrt(n), with at least 39 training points per list."""
    return max(1, min(round(4 * math.sqrt(n)), n // 39))


def resolve_params(index_type: str, n: int, dim: int, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Complete build and search parameters of ``index_type`` for ``n`` vectors of dimension ``dim``.

    Raises ``ValueError`` on an unknown type or parameter, or a value out of range."""
    if index_type not in INDEX_TYPES:
        raise ValueError(f"unknown index type {index_type!r}; known: {', '.join(INDEX_TYPES)}")
    given = {k: v for k, v in (params or {}).items() if v is not None}
    unknown = set(given) - _BUILD_KEYS[index_type]
    if unknown:
        known = ", ".join(sorted(_BUILD_KEYS[index_type])) or "none"
        raise ValueError(f"index type {index_type!r} takes no parameter {sorted(unknown)}; it takes: {known}")
    for key, value in given.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
    if n < MIN_DOCS[index_type]:
        raise ValueError(
            f"index type {index_type!r} needs at least {MIN_DOCS[index_type]:,} documents to train, got {n:,}; "
            "use flat or hnsw"
        )
    out: dict[str, Any] = {}
    if index_type == "hnsw":
        out = {"M": 32, "efConstruction": 80, "efSearch": 128, **given}
    elif index_type in ("ivf", "ivfpq"):
        nlist = int(given.get("nlist") or auto_nlist(n))
        if nlist > n:
            raise ValueError(f"nlist {nlist} exceeds the {n} vectors to train on")
        out = {"nlist": nlist, "nprobe": max(1, nlist // 8)}
        if index_type == "ivfpq":
            pq_m = int(given.get("pq_m") or max(1, dim // 8))
            if dim % pq_m:
                raise ValueError(f"pq_m {pq_m} must divide the dimension {dim}")
            nbits = int(given.get("nbits") or max(4, min(8, int(math.log2(max(n, 2) / 39)))))
            if nbits > 16:
                raise ValueError(f"nbits must be <= 16, got {nbits}")
            out.update({"pq_m": pq_m, "nbits": nbits, "k_factor": 8})
            floor = 64 * max(nlist, 2**nbits)
        else:
            floor = 64 * nlist
        out["train_points"] = min(n, int(given.get("train_points") or floor))
        out.update({k: int(v) for k, v in given.items() if k != "train_points"})
        if out["nprobe"] > out["nlist"]:
            out["nprobe"] = out["nlist"]
    return out


def make_index(index_type: str, dim: int, params: Mapping[str, Any]):
    """An empty (untrained) CPU FAISS index of ``index_type`` with ``params`` applied."""
    faiss = _faiss()
    ip = faiss.METRIC_INNER_PRODUCT
    if index_type == "flat":
        return faiss.IndexFlatIP(dim)
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(params["M"]), ip)
        index.hnsw.efConstruction = int(params["efConstruction"])
        index.hnsw.efSearch = int(params["efSearch"])
        return index
    if index_type == "ivf":
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, int(params["nlist"]), ip)
        index.nprobe = int(params["nprobe"])
        return index
    if index_type == "ivfpq":
        base = faiss.IndexIVFPQ(
            faiss.IndexFlatIP(dim), dim, int(params["nlist"]), int(params["pq_m"]), int(params["nbits"]), ip
        )
        base.nprobe = int(params["nprobe"])
        index = faiss.IndexRefineFlat(base)
        index.k_factor = float(params["k_factor"])
        return index
    raise ValueError(f"unknown index type {index_type!r}; known: {', '.join(INDEX_TYPES)}")


def train_index(index, vectors: np.ndarray, params: Mapping[str, Any], *, seed: int = 0) -> None:
    """Train an IVF index on a random sample of ``params["train_points"]`` vectors (no-op otherwise)."""
    if index.is_trained:
        return
    n = len(vectors)
    size = min(n, int(params.get("train_points") or n))
    sample = vectors if size >= n else vectors[np.sort(np.random.default_rng(seed).choice(n, size, replace=False))]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))


def apply_search_params(index, index_type: str, params: Mapping[str, Any]) -> None:
    """Set the search parameters on the index object itself (before it is shared between threads)."""
    faiss = _faiss()
    if index_type == "hnsw" and "efSearch" in params:
        faiss.downcast_index(index).hnsw.efSearch = int(params["efSearch"])
    elif index_type in ("ivf", "ivfpq"):
        if "nprobe" in params:
            faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
        if index_type == "ivfpq" and "k_factor" in params:
            faiss.downcast_index(index).k_factor = float(params["k_factor"])


def search_parameters(index_type: str, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """Per-call FAISS ``SearchParameters`` (first element; None for flat), plus objects to keep alive."""
    faiss = _faiss()
    if index_type == "hnsw":
        return (faiss.SearchParametersHNSW(efSearch=int(params["efSearch"])),)
    if index_type == "ivf":
        return (faiss.SearchParametersIVF(nprobe=int(params["nprobe"])),)
    if index_type == "ivfpq":
        ivf = faiss.SearchParametersIVF(nprobe=int(params["nprobe"]))
        return faiss.IndexRefineSearchParameters(k_factor=float(params["k_factor"]), base_index_params=ivf), ivf
    return (None,)


# --- GPU ------------------------------------------------------------------------------------------------
def gpu_count() -> int:
    """GPUs FAISS can use (0 with faiss-cpu)."""
    faiss = _faiss()
    try:
        return int(faiss.get_num_gpus())
    except (AttributeError, RuntimeError):
        return 0


_gpu_resources: Any = None
_gpu_lock = threading.Lock()


def to_gpu(index, index_type: str):
    """A GPU clone of ``index`` on device 0, or None (no GPU, an HNSW index, or a type FAISS cannot clone)."""
    faiss = _faiss()
    global _gpu_resources
    if index_type == "hnsw" or gpu_count() < 1 or not hasattr(faiss, "StandardGpuResources"):
        return None
    try:
        with _gpu_lock:
            if _gpu_resources is None:
                _gpu_resources = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(_gpu_resources, 0, index)
    except (RuntimeError, AttributeError, TypeError) as exc:  # FAISS raises RuntimeError for unsupported types
        log.warning("cannot put the %s index on the GPU (%s); searching on the CPU", index_type, exc)
        return None


# --- the opened index -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hit:
    """One retrieved document: id, text (as indexed), inner-product score, metadata (e.g. title)."""

    docid: str
    text: str
    score: float
    metadata: Mapping[str, Any] = field(default_factory=dict)


def load_embedding_model(name: str, store: Any = None) -> Any:
    """Load a bi-encoder by name (an embedded one is exported into the store on first use)."""
    from rerank.models import EMBEDDED, ModelError, ModelStore, ensure_embedded, kind_class, load_model

    try:
        model_store = store if isinstance(store, ModelStore) else ModelStore(store)
        if name in EMBEDDED:
            ensure_embedded(name, store=model_store)
        model = load_model(name, store=model_store)
    except ModelError as exc:
        raise RetrievalError(f"cannot load model {name!r}: {exc}") from None
    if not kind_class(model.kind).supports_embed:
        raise RetrievalError(f"model {name!r} is a {model.kind!r}: only a bi-encoder can embed a corpus")
    return model


class Index:
    """An index folder opened for search. Thread-safe: concurrent :meth:`search` calls are fine.

    ::

        index = Index.open("cranfield.idx", model=model)        # or model=None: load the manifest's model
        hits = index.search(["what is a boundary layer"], k=10)  # one list of Hit per query
    """

    def __init__(
        self,
        path: Path,
        manifest: IndexManifest,
        faiss_index: Any,
        docstore: DocStore,
        model: Any,
        *,
        gpu_index: Any = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self._cpu = faiss_index
        self._gpu = gpu_index
        self._gpu_search_lock = threading.Lock()
        self.docstore = docstore
        self.model = model
        self.params = dict(manifest.params)
        self.closed = False

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        model: Any = None,
        *,
        store: Any = None,
        gpu: bool | None = None,
        ef_search: int | None = None,
        nprobe: int | None = None,
        k_factor: int | None = None,
        verify: bool = True,
    ) -> Index:
        """Open ``path``: check the manifest, the FAISS index and the document store agree, and that ``model``
        (a loaded bi-encoder, a name, or None for the manifest's model) is the one the index was embedded
        with (``IndexModelMismatchError`` otherwise). ``verify``: check the files against the manifest's
        checksums (``CorruptIndexError``; reads every byte once, so huge indexes may skip it). ``gpu``:
        None = GPU when FAISS sees one; search parameter overrides become the defaults of this opened index."""
        path = Path(path)
        manifest = IndexManifest.read(path)
        if manifest.index_type not in INDEX_TYPES:
            raise CorruptIndexError(f"index {path}: unknown index type {manifest.index_type!r}")
        if model is None or isinstance(model, str):
            model = load_embedding_model(model or manifest.model.name, store)
        manifest.model.check_serves(ModelRef.from_model(model), str(path))
        if verify:
            verify_files(path, manifest)
        faiss_index = read_faiss(path / INDEX_FILE)
        docstore = DocStore(path / DOCSTORE_FILE)
        try:
            check_consistent(path, manifest, faiss_index, docstore)
        except BaseException:
            docstore.close()
            raise
        params = dict(manifest.params)
        overrides = {"efSearch": ef_search, "nprobe": nprobe, "k_factor": k_factor}
        params.update(validate_search_overrides(manifest.index_type, overrides))
        apply_search_params(faiss_index, manifest.index_type, params)
        use_gpu = gpu if gpu is not None else gpu_count() > 0
        gpu_index = to_gpu(faiss_index, manifest.index_type) if use_gpu else None
        index = cls(path, manifest, faiss_index, docstore, model, gpu_index=gpu_index)
        index.params = params
        return index

    # --- description ------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(self._cpu.ntotal)

    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def index_type(self) -> str:
        return self.manifest.index_type

    @property
    def device(self) -> str:
        return "gpu" if self._gpu is not None else "cpu"

    def __repr__(self) -> str:
        return (f"Index({str(self.path)!r}, type={self.index_type!r}, count={self.count}, "
                f"model={self.manifest.model.name!r}, device={self.device!r})")

    def close(self) -> None:
        self.closed = True
        self.docstore.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- search -----------------------------------------------------------------------------------
    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        if isinstance(queries, str):
            raise TypeError("queries must be a sequence of strings, not one string")
        for i, q in enumerate(queries):
            if not isinstance(q, str) or not q.strip():
                raise RetrievalError(f"query {i} is empty")
        return np.asarray(self.model.embed(list(queries), role="query"), dtype=np.float32)

    def search_vectors(
        self, vectors: np.ndarray, k: int, *, ef_search: int | None = None, nprobe: int | None = None,
        k_factor: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)``, each ``[n_queries, min(k, count)]``, best first; row -1 = no more results."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            shape = "x".join(map(str, x.shape))
            raise DimensionMismatchError(
                f"query vectors of shape {shape} do not fit the {self.dim}-d index {self.path}"
            )
        kk = min(int(k), self.count)
        if kk == 0 or len(x) == 0:
            return np.zeros((len(x), 0), dtype=np.float32), np.zeros((len(x), 0), dtype=np.int64)
        overrides = validate_search_overrides(
            self.index_type, {"efSearch": ef_search, "nprobe": nprobe, "k_factor": k_factor}
        )
        if self._gpu is not None and not overrides and kk <= GPU_MAX_K:
            with self._gpu_search_lock:
                scores, rows = self._gpu.search(x, kk)
        else:
            params = search_parameters(self.index_type, {**self.params, **overrides}) if overrides else (None,)
            scores, rows = self._cpu.search(x, kk, params=params[0])
        return scores, rows

    def search(
        self, queries: Sequence[str], k: int = 100, *, ef_search: int | None = None, nprobe: int | None = None,
        k_factor: int | None = None,
    ) -> list[list[Hit]]:
        """The top ``k`` documents of each query (one list of :class:`Hit` per query, best first)."""
        if self.closed:
            raise IndexClosedError(f"index {self.path} is closed")
        vectors = self.embed_queries(queries)
        scores, rows = self.search_vectors(vectors, k, ef_search=ef_search, nprobe=nprobe, k_factor=k_factor)
        docs = self.docstore.get_rows([int(r) for r in rows.ravel() if r >= 0])
        out: list[list[Hit]] = []
        for qs, qr in zip(scores, rows, strict=True):
            hits = []
            for s, r in zip(qs, qr, strict=True):
                if r < 0:
                    continue
                doc = docs.get(int(r))
                if doc is None:
                    raise CorruptIndexError(f"index {self.path}: FAISS row {int(r)} is not in the document store")
                hits.append(Hit(doc.id, doc.text, float(s), doc.meta))
            out.append(hits)
        return out

    def candidates(self, query: str, k: int = 100) -> list[Any]:
        """The top ``k`` of one query as pipeline ``Candidate``s (first-stage order, score = inner product)."""
        from rerank.pipeline import Candidate

        return [Candidate(h.docid, h.text, h.score) for h in self.search([query], k)[0]]

    def get_documents(self, ids: Sequence[str]) -> dict[str, StoredDoc]:
        """Stored documents by id (missing ids are left out)."""
        return self.docstore.get_ids(ids)


def validate_search_overrides(index_type: str, overrides: Mapping[str, Any]) -> dict[str, int]:
    given = {k: v for k, v in overrides.items() if v is not None}
    bad = set(given) - SEARCH_KEYS[index_type]
    if bad:
        names = {"efSearch": "ef_search", "nprobe": "nprobe", "k_factor": "k_factor"}
        wrong = ", ".join(sorted(names[b] for b in bad))
        raise ValueError(f"{wrong} does not apply to a {index_type!r} index")
    for key, value in given.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
    return {k: int(v) for k, v in given.items()}


def read_faiss(path: Path):
    faiss = _faiss()
    if not path.is_file():
        raise CorruptIndexError(f"FAISS index file {path} is missing")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptIndexError(f"FAISS index {path} is unreadable: {first}") from None


def check_consistent(path: Path, manifest: IndexManifest, faiss_index: Any, docstore: DocStore) -> None:
    """``CorruptIndexError`` unless manifest, FAISS index and document store agree on dimension and count."""
    if faiss_index.d != manifest.dim or manifest.model.dim != manifest.dim:
        raise DimensionMismatchError(
            f"index {path}: the manifest says {manifest.dim}-d vectors (model {manifest.model.dim}-d) but "
            f"the FAISS index holds {faiss_index.d}-d vectors"
        )
    stored = docstore.count()
    if not (faiss_index.ntotal == manifest.count == stored):
        raise CorruptIndexError(
            f"index {path} is inconsistent: manifest count {manifest.count}, FAISS vectors "
            f"{faiss_index.ntotal}, stored documents {stored}"
        )
