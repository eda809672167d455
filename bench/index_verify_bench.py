"""What checking an index's files against its manifest's checksums costs when it is opened.

Side by side, interleaved, on the same folder: the checksum check (``verify_files``: SHA-256 of
``index.faiss`` and ``docs.sqlite``) against the rest of opening (``read_faiss`` and the document store's
consistency check). The folder holds N random 384-d vectors (MiniLM's dimension) in a flat index and N short
documents; the files are in the page cache (just written), so the figure is the hashing, not the disk.

    .venv/bin/python bench/index_verify_bench.py --out bench/results
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from rerank.retrieval.docstore import DocStore
from rerank.retrieval.index import check_consistent, read_faiss
from rerank.retrieval.manifest import DOCSTORE_FILE, INDEX_FILE, IndexManifest, ModelRef, checksums, verify_files

DIM = 384


def make_folder(folder: Path, n: int) -> IndexManifest:
    import faiss

    vectors = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    faiss.write_index(index, str(folder / INDEX_FILE))
    with DocStore(folder / DOCSTORE_FILE, create=True) as store:
        store.add((i, f"d{i}", f"document {i} about boundary layers and shock waves", {}) for i in range(n))
    model = ModelRef("bench", "", None, None, DIM)
    return IndexManifest(model=model, index_type="flat", params={}, dim=DIM, count=n, files=checksums(folder))


def open_rest(folder: Path, manifest: IndexManifest) -> None:
    """Opening without the checksum check: read the FAISS index, check it against the document store."""
    index = read_faiss(folder / INDEX_FILE)
    with DocStore(folder / DOCSTORE_FILE) as store:
        check_consistent(folder, manifest, index, store)


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,500000", help="vectors per index, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs per size (median reported)")
    parser.add_argument("--out", default="bench/results", help="folder for index_verify.md and .json")
    args = parser.parse_args()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            manifest = make_folder(folder, n)
            size_mb = sum((folder / f).stat().st_size for f in (INDEX_FILE, DOCSTORE_FILE)) / 1e6
            verify, rest = [], []
            for _ in range(args.repeats):
                verify.append(timed(verify_files, folder, manifest))
                rest.append(timed(open_rest, folder, manifest))
            v, r = statistics.median(verify), statistics.median(rest)
            rows.append({"vectors": n, "files_mb": round(size_mb, 1), "verify_s": round(v, 3),
                         "open_rest_s": round(r, 3), "verify_mb_per_s": round(size_mb / v, 1),
                         "verify_share_of_open": round(v / (v + r), 3)})
            print(rows[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python bench/index_verify_bench.py " + f"--sizes {args.sizes} --repeats {args.repeats}",
            "machine": f"{platform.machine()}, {platform.python_version()}", "rows": rows}
    (out / "index_verify.json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = ["# Index checksum check at open (`bench/index_verify_bench.py`)", "", f"`{meta['command']}`", "",
             "| vectors (384-d flat) | files | checksum check | rest of opening | hashing | share of open |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['vectors']:,} | {r['files_mb']:.0f} MB | {r['verify_s']:.2f} s | {r['open_rest_s']:.2f} s | "
              f"{r['verify_mb_per_s']:.0f} MB/s | {r['verify_share_of_open']:.0%} |" for r in rows]
    (out / "index_verify.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
