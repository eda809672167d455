"""Retrieval package without the real model: index types, document store, manifest, corpus errors, atomic
writes, model checks and the GPU switch, with a tiny hashing embedder standing in for a bi-encoder."""

from __future__ import annotations

import json
import threading
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rerank.progress import Progress
from rerank.retrieval import (
    CorpusError,
    CorruptIndexError,
    DimensionMismatchError,
    DocStore,
    DuplicateIdError,
    Index,
    IndexManifest,
    IndexModelMismatchError,
    ModelRef,
    NotAnIndexError,
    RetrievalError,
    add_documents,
    build_index,
    read_documents,
    resolve_params,
)
from rerank.retrieval import index as index_mod
from rerank.retrieval.embed import embed_texts
from rerank.retrieval.index import make_index, search_parameters, train_index


class HashEmbedder:
    """Bag of hashed words -> normalised ``dim``-d vector; the bi-encoder interface the package uses."""

    variant = None
    path = None

    def __init__(self, dim: int = 64, name: str = "hash") -> None:
        self.name = name
        self.spec = SimpleNamespace(options={"embedding_dim": dim}, max_query_tokens=64, max_passage_tokens=256)
        self.options = SimpleNamespace(max_chars=20_000)
        self.calls = 0

    def embed(self, texts, role: str = "passage") -> np.ndarray:
        self.calls += 1
        dim = self.spec.options["embedding_dim"]
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"text {i} is empty")
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % dim] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


WORDS = ["wing", "flow", "boundary", "layer", "heat", "shock", "pressure", "mach", "number", "supersonic", "slab",
         "plate", "cone", "drag", "lift"]


def write_corpus(path: Path, ids, *, seed: int = 0, extra: list[str] | None = None) -> Path:
    rng = np.random.default_rng(seed)
    lines = []
    for i in ids:
        text = " ".join(rng.choice(WORDS, size=8))
        lines.append(json.dumps({"id": str(i), "title": f"title {i}", "text": text}))
    lines.extend(extra or [])
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture()
def small_index(tmp_path, embedder) -> Path:
    corpus = write_corpus(tmp_path / "a.jsonl", range(50))
    build_index(corpus, tmp_path / "idx", embedder)
    return tmp_path / "idx"


# --- parameters and FAISS index types ---------------------------------------------------------------------
def test_resolve_params_defaults_and_errors():
    assert resolve_params("flat", 10, 384) == {}
    assert resolve_params("hnsw", 10, 384) == {"M": 32, "efConstruction": 80, "efSearch": 128}
    ivf = resolve_params("ivf", 100_000, 384)
    # 4 sqrt(n) lists, an eighth of them probed, 64 training points per list (FAISS's guidelines)
    assert ivf == {"nlist": 1265, "nprobe": 158, "train_points": 80_960}
    pq = resolve_params("ivfpq", 1_000_000, 384, {"nprobe": 32})
    assert pq["pq_m"] == 48 and pq["nbits"] == 8 and pq["nprobe"] == 32 and pq["k_factor"] == 8
    assert resolve_params("ivfpq", 1400, 384)["nbits"] == 5  # 2**5 * 39 <= 1400
    with pytest.raises(ValueError, match="unknown index type"):
        resolve_params("lsh", 10, 8)
    with pytest.raises(ValueError, match="takes no parameter"):
        resolve_params("flat", 10, 8, {"nprobe": 3})
    with pytest.raises(ValueError, match="at least 1,000 documents"):
        resolve_params("ivfpq", 999, 384)
    with pytest.raises(ValueError, match="must divide"):
        resolve_params("ivfpq", 5000, 384, {"pq_m": 7})
    with pytest.raises(ValueError, match=">= 1"):
        resolve_params("hnsw", 10, 8, {"efSearch": 0})


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf", "ivfpq"])
def test_index_types_find_the_exact_neighbours(index_type):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, 32)).astype(np.float32)
    x = centres[rng.integers(0, 20, 3000)] + 0.3 * rng.standard_normal((3000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:100] + 0.05 * rng.standard_normal((100, 32)).astype(np.float32)
    exact = (q @ x.T).argsort(axis=1)[:, ::-1][:, :10]
    params = resolve_params(index_type, len(x), 32, {"pq_m": 8} if index_type == "ivfpq" else None)
    index = make_index(index_type, 32, params)
    train_index(index, x, params)
    index.add(x)
    if "nlist" in params:
        params["nprobe"] = params["nlist"] // 2
    found = index.search(q, 10, params=search_parameters(index_type, params)[0])[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
    assert recall >= 0.9, (index_type, recall)


def test_embed_texts_keeps_order_and_reports_progress(embedder, capsys):
    import io

    texts = ["wing flow", "heat " * 30, "drag lift cone", "plate"]
    stream = io.StringIO()
    progress = Progress(None, desc="embed", unit="docs", stream=stream)
    vectors = embed_texts(embedder, texts, batch_size=2, progress=progress)
    np.testing.assert_allclose(vectors, embedder.embed(texts), atol=1e-6)
    assert embedder.calls == 3  # two batches + the reference call
    (line,) = stream.getvalue().splitlines()  # not a terminal: one plain line at the end
    assert line.startswith("embed: docs 4/4 (100%) | ") and "docs/s" in line and "ETA" in line


# --- document store and manifest -------------------------------------------------------------------------
def test_docstore_roundtrip(tmp_path):
    with DocStore(tmp_path / "d.sqlite", create=True, readonly=False) as store:
        store.add([(0, "a", "text a", {"title": "A"}), (1, "b", "text b", {})])
        assert store.count() == 2 and store.max_row() == 1
        assert store.existing_ids(["b", "c"]) == {"b"}
        assert store.get_rows([1, 0, 7])[0].meta == {"title": "A"}
        assert store.get_ids(["b"])["b"].row == 1
        store.copy_to(tmp_path / "copy.sqlite")
    with DocStore(tmp_path / "copy.sqlite") as copy:
        assert [d.id for d in copy.iter_docs()] == ["a", "b"]
    with pytest.raises(CorruptIndexError, match="missing"):
        DocStore(tmp_path / "none.sqlite")
    (tmp_path / "junk.sqlite").write_text("not a database")
    with pytest.raises(CorruptIndexError, match="unreadable"):
        DocStore(tmp_path / "junk.sqlite")


def test_not_an_index(tmp_path):
    with pytest.raises(NotAnIndexError, match="does not exist"):
        IndexManifest.read(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotAnIndexError, match="not a folder"):
        IndexManifest.read(tmp_path / "file")
    with pytest.raises(NotAnIndexError, match=r"no manifest\.json"):
        IndexManifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(NotAnIndexError, match="unreadable"):
        IndexManifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "minilm", "kind": "bi-encoder"}))
    with pytest.raises(NotAnIndexError, match="not of the 'rerank-index' format"):
        IndexManifest.read(tmp_path)


def test_model_ref_checks():
    ref = ModelRef("minilm", "aa" * 32, "fp32", "bb" * 32, 384)
    ref.check_serves(ModelRef("minilm", "aa" * 32, "fp32", "bb" * 32, 384), "idx")
    with pytest.raises(IndexModelMismatchError, match="embedded with model 'minilm', not 'other'"):
        ref.check_serves(ModelRef("other", "aa" * 32, "fp32", "bb" * 32, 384), "idx")
    with pytest.raises(IndexModelMismatchError, match="other weights under the same name"):
        ref.check_serves(ModelRef("minilm", "cc" * 32, "fp32", "bb" * 32, 384), "idx")
    with pytest.raises(DimensionMismatchError, match="384-d vectors but model 'minilm' gives 768-d"):
        ref.check_serves(ModelRef("minilm", "aa" * 32, "fp32", "bb" * 32, 768), "idx")


# --- corpus errors ---------------------------------------------------------------------------------------
def test_corpus_errors(tmp_path):
    with pytest.raises(CorpusError, match=r"corpus file .* not found"):
        read_documents(tmp_path / "missing.jsonl")
    with pytest.raises(CorpusError, match="is not a file"):
        read_documents(tmp_path)
    bad = write_corpus(tmp_path / "bad.jsonl", range(3), extra=['{"id": "x", "text": "ok"', '{"id": "y"}'])
    with pytest.raises(CorpusError, match=r"bad\.jsonl:4: invalid JSON"):
        read_documents(bad)
    bad.write_text('{"id": "1", "text": "fine"}\n{"id": "2"}\n')
    with pytest.raises(CorpusError, match=r"bad\.jsonl:2: expected an object"):
        read_documents(bad)
    empty = write_corpus(tmp_path / "empty.jsonl", range(3), extra=['{"id": "e", "title": "", "text": "  "}'])
    with pytest.raises(CorpusError, match=r"empty\.jsonl:4: document 'e' has empty text"):
        read_documents(empty)
    corpus = read_documents(empty, skip_empty=True)
    assert [d.id for d in corpus.documents] == ["0", "1", "2"] and [d.id for d in corpus.skipped_empty] == ["e"]
    assert corpus.documents[0].meta == {"title": "title 0"} and corpus.documents[0].line == 1
    dup = write_corpus(tmp_path / "dup.jsonl", [1, 2, 1])
    with pytest.raises(CorpusError, match=r"dup\.jsonl:3: duplicate document id '1'"):
        read_documents(dup)
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(CorpusError, match="holds no documents"):
        read_documents(tmp_path / "blank.jsonl")


# --- build, add, search with the hashing embedder ---------------------------------------------------------
def test_build_search_add(tmp_path, embedder, small_index):
    with Index.open(small_index, embedder) as index:
        assert index.count == 50 and index.dim == 64 and index.device == "cpu"
        doc = index.get_documents(["7"])["7"]
        hits = index.search([doc.text], k=5)[0]
        assert hits[0].docid == "7" and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[0].metadata == {"title": "title 7"}
        assert len(index.search(["wing"], k=500)[0]) == 50  # k above the count
        with pytest.raises(ValueError, match="k must be"):
            index.search(["wing"], k=0)
        with pytest.raises(RetrievalError, match="query 1 is empty"):
            index.search(["wing", " "], k=3)
        with pytest.raises(DimensionMismatchError, match="do not fit the 64-d index"):
            index.search_vectors(np.zeros((1, 8), dtype=np.float32), 3)
    more = write_corpus(tmp_path / "b.jsonl", range(50, 60), seed=1)
    report = add_documents(small_index, more, embedder)
    assert report.added == 10 and report.count == 60
    with Index.open(small_index, embedder) as index:
        assert index.count == 60 and len(index.manifest.corpora) == 2
        doc = index.get_documents(["55"])["55"]
        assert index.search([doc.text], k=1)[0][0].docid == "55"
    assert not list(tmp_path.glob(".idx.*"))  # no temporary folders left behind


def test_rebuild_is_safe_and_up_to_date(tmp_path, embedder, small_index):
    before = (small_index / "index.faiss").read_bytes()
    calls = embedder.calls
    report = build_index(tmp_path / "a.jsonl", small_index, embedder)
    assert report.up_to_date and embedder.calls == calls  # nothing embedded again
    report = build_index(tmp_path / "a.jsonl", small_index, embedder, force=True)
    assert not report.up_to_date and report.count == 50
    assert (small_index / "index.faiss").read_bytes() == before
    other = write_corpus(tmp_path / "c.jsonl", range(100, 120), seed=3)
    build_index(other, small_index, embedder, index_type="hnsw")  # a changed corpus replaces the index
    assert IndexManifest.read(small_index).count == 20
    (tmp_path / "notindex").mkdir()
    (tmp_path / "notindex" / "keep.txt").write_text("mine")
    with pytest.raises(RetrievalError, match="holds something else than an index"):
        build_index(other, tmp_path / "notindex", embedder)
    assert (tmp_path / "notindex" / "keep.txt").read_text() == "mine"


def test_interrupted_build_leaves_old_index(tmp_path, embedder, small_index, monkeypatch):
    before = {p.name: p.read_bytes() for p in small_index.iterdir()}
    other = write_corpus(tmp_path / "c.jsonl", range(200, 230), seed=4)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("rerank.retrieval.build._put_in_place", boom)
    with pytest.raises(KeyboardInterrupt):
        build_index(other, small_index, embedder)
    with pytest.raises(KeyboardInterrupt):
        build_index(other, tmp_path / "fresh", embedder)
    assert {p.name: p.read_bytes() for p in small_index.iterdir()} == before
    assert not (tmp_path / "fresh").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_add_duplicate_writes_nothing(tmp_path, embedder, small_index):
    before = {p.name: p.read_bytes() for p in small_index.iterdir()}
    dup = write_corpus(tmp_path / "dup.jsonl", [60, 61, 7, 62, 8])
    calls = embedder.calls
    with pytest.raises(DuplicateIdError, match=r"dup\.jsonl:3: document id '7' is already in index .* \(and 1 more\)"):
        add_documents(small_index, dup, embedder)
    assert embedder.calls == calls
    assert {p.name: p.read_bytes() for p in small_index.iterdir()} == before


def test_open_refuses_other_model_and_broken_folders(tmp_path, embedder, small_index):
    with pytest.raises(IndexModelMismatchError, match="embedded with model 'hash', not 'other'"):
        Index.open(small_index, HashEmbedder(name="other"))
    with pytest.raises(DimensionMismatchError, match="64-d vectors but model 'hash' gives 32-d"):
        Index.open(small_index, HashEmbedder(dim=32))
    with pytest.raises(IndexModelMismatchError):
        add_documents(small_index, write_corpus(tmp_path / "n.jsonl", [900]), HashEmbedder(name="other"))
    with pytest.raises(NotAnIndexError):
        Index.open(tmp_path, embedder)
    data = json.loads((small_index / "manifest.json").read_text())
    data["dim"] = 128
    data["model"]["dim"] = 128
    (small_index / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(DimensionMismatchError, match=r"manifest says 128-d vectors .* holds 64-d"):
        Index.open(small_index, HashEmbedder(dim=128))
    data["dim"] = data["model"]["dim"] = 64
    data["count"] = 51
    (small_index / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(CorruptIndexError, match="manifest count 51, FAISS vectors 50, stored documents 50"):
        Index.open(small_index, embedder)


def test_concurrent_searches_agree(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "a.jsonl", range(300))
    build_index(corpus, tmp_path / "h", embedder, index_type="hnsw")
    queries = [" ".join(WORDS[i : i + 3]) for i in range(len(WORDS) - 3)]
    with Index.open(tmp_path / "h", embedder) as index:
        expected = [[h.docid for h in hits] for hits in index.search(queries, k=10)]
        results: dict[int, list[list[str]]] = {}

        def work(t: int) -> None:
            out = []
            for _ in range(5):
                out = [[h.docid for h in hits] for hits in index.search(queries, k=10)]
            results[t] = out

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(r == expected for r in results.values()) and len(results) == 4


def test_search_overrides(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "a.jsonl", range(400))
    build_index(corpus, tmp_path / "ivf", embedder, index_type="ivf", params={"nlist": 8, "nprobe": 1})
    with Index.open(tmp_path / "ivf", embedder, nprobe=8) as index:
        assert index.params["nprobe"] == 8
        exact = index.search(["wing flow heat"], k=20)[0]
        assert [h.docid for h in index.search(["wing flow heat"], k=20, nprobe=8)[0]] == [h.docid for h in exact]
        with pytest.raises(ValueError, match="ef_search does not apply"):
            index.search(["wing"], k=3, ef_search=10)


def test_gpu_path_is_used_when_faiss_sees_a_gpu(tmp_path, embedder, small_index, monkeypatch):
    """No GPU here: a fake clone stands in for faiss.index_cpu_to_gpu; checks the switch and the lock path."""
    import faiss

    cloned = []

    class FakeGpuIndex:
        def __init__(self, cpu):
            self.cpu = cpu

        def search(self, x, k):
            cloned.append(k)
            return self.cpu.search(x, k)

    monkeypatch.setattr(index_mod, "gpu_count", lambda: 1)
    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: object(), raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", lambda res, dev, idx: FakeGpuIndex(idx), raising=False)
    monkeypatch.setattr(index_mod, "_gpu_resources", None)
    with Index.open(small_index, embedder) as index:
        assert index.device == "gpu"
        assert index.search(["wing"], k=3)[0]
        assert cloned == [3]
    with Index.open(small_index, embedder, gpu=False) as index:
        assert index.device == "cpu"
    assert index_mod.to_gpu(object(), "hnsw") is None  # FAISS has no GPU HNSW


# --- checksums of the index files ---------------------------------------------------------------------------
def _flip_a_byte(path: Path) -> None:
    """Flip one byte in the middle of the file (same size: the FAISS reader and the row counts see nothing)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_manifest_records_checksums_that_opening_verifies(tmp_path, embedder, small_index):
    import hashlib

    files = IndexManifest.read(small_index).files
    assert files == {name: hashlib.sha256((small_index / name).read_bytes()).hexdigest()
                     for name in ("index.faiss", "docs.sqlite")}
    add_documents(small_index, write_corpus(tmp_path / "more.jsonl", [900, 901]), embedder)
    after = IndexManifest.read(small_index).files
    assert after["index.faiss"] == hashlib.sha256((small_index / "index.faiss").read_bytes()).hexdigest()
    assert after != files
    with Index.open(small_index, embedder) as index:  # verifies, and passes
        assert index.count == 52


@pytest.mark.parametrize("name", ["index.faiss", "docs.sqlite"])
def test_a_corrupted_file_is_an_error_unless_verification_is_skipped(tmp_path, embedder, small_index, name):
    _flip_a_byte(small_index / name)
    with pytest.raises(CorruptIndexError, match=f"{name} does not match the checksum in manifest.json"):
        Index.open(small_index, embedder)
    with pytest.raises(CorruptIndexError, match=f"{name} does not match the checksum"):  # not extended
        add_documents(small_index, write_corpus(tmp_path / "more.jsonl", [900]), embedder)
    if name == "index.faiss":  # the flipped byte is in a vector: FAISS reads it, scores change silently
        Index.open(small_index, embedder, verify=False).close()


def test_an_index_without_checksums_opens_with_a_warning(embedder, small_index, caplog):
    data = json.loads((small_index / "manifest.json").read_text())
    del data["files"]  # as written before checksums were recorded
    (small_index / "manifest.json").write_text(json.dumps(data))
    with caplog.at_level("WARNING", logger="rerank.retrieval"), Index.open(small_index, embedder):
        pass
    assert "records no checksums" in caplog.text


def test_cli_search_of_a_corrupted_index_fails_with_one_line(tmp_path, embedder, small_index, capsys, monkeypatch):
    from rerank.cli import main

    monkeypatch.setattr(index_mod, "load_embedding_model", lambda name, store=None: embedder)
    queries = tmp_path / "q.tsv"
    queries.write_text("1\tboundary layer flow\n")
    args = ["index", "search", "--index", str(small_index), "--queries", str(queries), "--k", "3", "--quiet"]
    _flip_a_byte(small_index / "index.faiss")
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "index.faiss does not match the checksum" in err[0] and "rebuild" in err[0]
    assert main([*args, "--no-verify"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_the_server_verifies_its_index_unless_told_not_to(embedder, small_index):
    from rerank.server.app import open_index
    from rerank.server.cli import build_config, serve_args

    _flip_a_byte(small_index / "index.faiss")
    with pytest.raises(CorruptIndexError, match=r"index\.faiss does not match the checksum"):
        open_index(str(small_index), {"hash": embedder})
    open_index(str(small_index), {"hash": embedder}, verify=False).close()
    assert build_config(serve_args(["--index", str(small_index)])).verify_index is True
    assert build_config(serve_args(["--index", str(small_index), "--no-verify-index"])).verify_index is False


def test_faiss_loader_info_lines_are_quiet():
    import subprocess
    import sys

    code = ("import logging; logging.basicConfig(level=logging.INFO); "
            "from rerank.retrieval import index; index._faiss(); logging.getLogger('rerank').info('ready')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "INFO:rerank:ready" in proc.stderr  # INFO reaches the log ...
    assert "faiss.loader" not in proc.stderr  # ... but not FAISS's loader notes


@pytest.mark.parametrize(("command", "flag"), [("build", "--corpus"), ("add", "--corpus"), ("search", "--queries")])
def test_cli_a_missing_file_names_its_flag(tmp_path, small_index, capsys, command, flag):
    from rerank.cli import main

    absent = tmp_path / "absent"
    args = {"build": ["--corpus", str(absent), "--out", str(tmp_path / "new.idx")],
            "add": ["--index", str(small_index), "--corpus", str(absent)],
            "search": ["--index", str(small_index), "--queries", str(absent)]}[command]
    assert main(["index", command, *args]) == 1
    assert capsys.readouterr().err == f"rerank: error: cannot read {flag} '{absent}': No such file or directory\n"
