"""``rerank index build | add | search``: the command-line face of the retrieval package.

Wire it into a parser with :func:`add_index_parser`; each sub-command sets ``func(args) -> exit code``.
Errors are one line on stderr, ``rerank: error: ...``: exit 1 for bad input (files, index folders, models),
2 for bad usage (options that do not fit together).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..engine_options import add_engine_arguments
from ..files import first_unreadable, write_text_atomic

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2

_PARAM_FLAGS = {
    "M": "--hnsw-m",
    "efConstruction": "--ef-construction",
    "efSearch": "--ef-search",
    "nlist": "--nlist",
    "nprobe": "--nprobe",
    "pq_m": "--pq-m",
    "nbits": "--nbits",
    "k_factor": "--k-factor",
    "train_points": "--train-points",
}


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"rerank: error: {message}\n")
    sys.stderr.flush()
    return code


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _progress(args: argparse.Namespace, label: str, unit: str = "docs") -> Any:
    from ..progress import Progress

    return Progress(None, desc=label, unit=unit, quiet=getattr(args, "quiet", False))


def _errors() -> tuple[type[BaseException], ...]:
    from rerank.models import ModelError

    from .errors import RetrievalError

    return RetrievalError, ModelError


def _param_args(args: argparse.Namespace, index_type: str) -> tuple[dict[str, int], str | None]:
    """Index parameters given on the command line, or a usage error for one that does not fit the type."""
    from .index import _BUILD_KEYS

    given = {key: getattr(args, key) for key in _PARAM_FLAGS if getattr(args, key, None) is not None}
    bad = [_PARAM_FLAGS[k] for k in given if k not in _BUILD_KEYS[index_type]]
    if bad:
        return given, f"{', '.join(sorted(bad))} does not apply to --index {index_type}"
    return given, None


def cmd_build(args: argparse.Namespace) -> int:
    from ..distributed import RayOptions, TextEmbedder, check_engine_arguments, ray_embed_mapper
    from .build import build_index

    params, usage = _param_args(args, args.index)
    try:
        check_engine_arguments(args)
    except ValueError as exc:
        usage = str(exc)
    if usage:
        return _fail(usage, EXIT_USAGE)
    unreadable = first_unreadable([("--corpus", args.corpus)])
    if unreadable:
        return _fail(unreadable, EXIT_BAD_INPUT)
    map_batches = None
    if args.engine == "ray":
        map_batches = ray_embed_mapper(TextEmbedder(args.model, args.store), RayOptions.from_args(args))
    try:
        report = build_index(
            args.corpus, args.out, args.model, index_type=args.index, params=params, skip_empty=args.skip_empty,
            force=args.force, batch_size=args.batch_size, progress=_progress(args, "embed"), store=args.store,
            map_batches=map_batches,
        )
    except (*_errors(), ValueError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        return _fail(f"cannot write index {args.out}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    skipped = f" ({report.skipped_empty} empty skipped)" if report.skipped_empty else ""
    if report.up_to_date:
        print(f"index {report.path} is up to date: {report.count:,} documents{skipped}; --force rebuilds it")
        return EXIT_OK
    print(
        f"indexed {report.count:,} documents{skipped} into {report.path}: {report.index_type} "
        f"{_fmt_params(report.params)}; {report.docs_per_s:,.1f} docs/s (embedding {report.embed_s:.1f} s, "
        f"indexing {report.index_s:.1f} s)"
    )
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    from .build import add_documents

    unreadable = first_unreadable([("--corpus", args.corpus)])
    if unreadable:
        return _fail(unreadable, EXIT_BAD_INPUT)

    try:
        report = add_documents(
            args.index, args.corpus, args.model, skip_empty=args.skip_empty, batch_size=args.batch_size,
            progress=_progress(args, "embed"), store=args.store, verify=args.verify,
        )
    except (*_errors(), ValueError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        return _fail(f"cannot write index {args.index}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    skipped = f" ({report.skipped_empty} empty skipped)" if report.skipped_empty else ""
    print(
        f"added {report.added:,} documents{skipped} to {report.path}: {report.count:,} in all; "
        f"{report.docs_per_s:,.1f} docs/s"
    )
    print(f"a server started with --index {report.path} searches the new documents after a restart")
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    import io

    from rerank.evaluation import write_run

    from .corpus import read_query_file
    from .index import SEARCH_KEYS, Index
    from .manifest import IndexManifest

    if any(c.isspace() for c in args.tag) or not args.tag:
        return _fail(f"--tag must be non-empty without whitespace, got {args.tag!r}", EXIT_USAGE)
    if args.output != "-" and Path(args.output).is_dir():
        return _fail(f"--output {args.output} is a folder", EXIT_BAD_INPUT)
    unreadable = first_unreadable([("--queries", args.queries)])
    if unreadable:
        return _fail(unreadable, EXIT_BAD_INPUT)
    try:
        manifest = IndexManifest.read(args.index)
        overrides = {"efSearch": args.ef_search, "nprobe": args.nprobe, "k_factor": args.k_factor}
        bad = [_PARAM_FLAGS[k] for k, v in overrides.items()
               if v is not None and k not in SEARCH_KEYS.get(manifest.index_type, set())]
        if bad:
            return _fail(f"{', '.join(sorted(bad))} does not apply to a {manifest.index_type} index", EXIT_USAGE)
        queries = read_query_file(args.queries)
        index = Index.open(args.index, args.model, store=args.store, ef_search=args.ef_search,
                           nprobe=args.nprobe, k_factor=args.k_factor, verify=args.verify)
        with index:
            qids = list(queries)
            progress = _progress(args, "search", unit="queries")
            progress.reset(len(qids))
            run: dict[str, dict[str, float]] = {}
            t0 = time.perf_counter()
            for start in range(0, len(qids), args.batch_size):
                chunk = qids[start : start + args.batch_size]
                for qid, hits in zip(chunk, index.search([queries[q] for q in chunk], args.k), strict=True):
                    run[qid] = {h.docid: h.score for h in hits}
                progress.update(len(chunk))
            progress.close()
            elapsed = time.perf_counter() - t0
    except (*_errors(), ValueError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    buf = io.StringIO()
    write_run(run, buf, tag=args.tag)
    try:
        write_text_atomic(args.output, buf.getvalue())
    except OSError as exc:
        return _fail(f"cannot write --output {args.output!r}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    if not getattr(args, "quiet", False):
        sys.stderr.write(
            f"searched {len(qids):,} queries (top {args.k}) in {elapsed:.1f} s on {index.device} "
            f"({index.index_type}, {index.count:,} documents)\n"
        )
    return EXIT_OK


def _fmt_params(params: Any) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in dict(params).items()) + ")" if params else "(exact)"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="model store folder (default $RERANK_HOME/models)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def add_verify_argument(p: argparse.ArgumentParser, flag: str = "--no-verify", dest: str = "verify") -> None:
    """The flag that skips the check of an index's files against the checksums in its manifest."""
    p.add_argument(flag, dest=dest, action="store_false", default=True,
                   help="skip checking the index files against the sha256 checksums in its manifest (the "
                        "check hashes every byte once, about as long as reading the index: skip it only for "
                        "huge indexes)")


def add_index_parser(subparsers: Any) -> None:
    """Add ``index`` with ``build``, ``add`` and ``search`` to ``subparsers`` (of the ``rerank`` parser)."""
    from .index import INDEX_TYPES

    index = subparsers.add_parser(
        "index", help="first-stage dense retrieval: build, extend and search a FAISS index",
        description="Embed a JSONL corpus with a bi-encoder into a FAISS index plus a SQLite document store, "
                    "add documents to it, and search it into a TREC run.",
    )
    sub = index.add_subparsers(dest="index_command", required=True, parser_class=type(index))

    build = sub.add_parser(
        "build", help="embed a corpus and write an index folder (atomically)",
        description="Embed a JSONL corpus with a bi-encoder and write an index folder: FAISS index, SQLite "
                    "document store and a manifest with the model's identity and the files' checksums. The "
                    "folder is replaced only when the new one is complete; the same corpus, model and "
                    "parameters again find it up to date.",
    )
    build.add_argument("--corpus", required=True, help="corpus JSON lines {id, text[, title, ...]}")
    build.add_argument("--out", required=True, help="index folder to write (replaced only when complete)")
    build.add_argument("--model", default="minilm", help="bi-encoder: embedded or store name, or folder "
                                                         "(default minilm)")
    build.add_argument("--index", choices=INDEX_TYPES, default="flat", help="index type (default flat: exact)")
    build.add_argument("--skip-empty", action="store_true", help="leave out documents with empty text")
    build.add_argument("--force", action="store_true", help="rebuild even when the index is up to date")
    build.add_argument("--batch-size", type=_positive, default=256, help="texts per embedding call")
    build.add_argument("--hnsw-m", dest="M", type=_positive, default=None, help="hnsw: links per node (32)")
    build.add_argument("--ef-construction", dest="efConstruction", type=_positive, default=None,
                       help="hnsw: build beam width (80)")
    build.add_argument("--ef-search", dest="efSearch", type=_positive, default=None,
                       help="hnsw: default search beam width (128)")
    build.add_argument("--nlist", type=_positive, default=None, help="ivf, ivfpq: inverted lists (auto)")
    build.add_argument("--nprobe", type=_positive, default=None, help="ivf, ivfpq: default lists searched")
    build.add_argument("--pq-m", dest="pq_m", type=_positive, default=None, help="ivfpq: sub-quantizers (dim/8)")
    build.add_argument("--nbits", type=_positive, default=None, help="ivfpq: bits per sub-quantizer (8)")
    build.add_argument("--k-factor", dest="k_factor", type=_positive, default=None,
                       help="ivfpq: exact re-scoring of k_factor * k PQ candidates (8)")
    build.add_argument("--train-points", dest="train_points", type=_positive, default=None,
                       help="ivf, ivfpq: vectors sampled for training")
    _common(build)
    add_engine_arguments(build)
    build.set_defaults(func=cmd_build)

    add = sub.add_parser(
        "add", help="append documents (new ids only) to an index folder",
        description="Append the documents of a corpus (new ids only) to an index folder, atomically. A server "
                    "started with `rerank serve --index` on this folder keeps serving the index it opened: "
                    "restart it to search the new documents.",
    )
    add.add_argument("--index", required=True, help="index folder")
    add.add_argument("--corpus", required=True, help="corpus JSON lines with the new documents")
    add.add_argument("--model", default=None, help="bi-encoder (default: the one the index names)")
    add.add_argument("--skip-empty", action="store_true", help="leave out documents with empty text")
    add.add_argument("--batch-size", type=_positive, default=256, help="texts per embedding call")
    add_verify_argument(add)
    _common(add)
    add.set_defaults(func=cmd_add)

    search = sub.add_parser(
        "search", help="search an index with a queries file into a TREC run",
        description="Embed each query of a qid<TAB>text file with the index's model, search the index (its "
                    "files checked against their checksums first) and write the top k as a TREC run.",
    )
    search.add_argument("--index", required=True, help="index folder")
    search.add_argument("--queries", required=True, help="queries TSV: qid<TAB>text")
    search.add_argument("--k", type=_positive, default=100, help="documents per query (default 100)")
    search.add_argument("--output", default="-", help="TREC run file, or - for stdout (default -)")
    search.add_argument("--tag", default="dense", help="run tag (default dense)")
    search.add_argument("--model", default=None, help="bi-encoder (default: the one the index names)")
    search.add_argument("--ef-search", type=_positive, default=None, help="hnsw: search beam width")
    search.add_argument("--nprobe", type=_positive, default=None, help="ivf, ivfpq: lists searched")
    search.add_argument("--k-factor", dest="k_factor", type=_positive, default=None,
                        help="ivfpq: exact re-scoring factor")
    search.add_argument("--batch-size", type=_positive, default=256, help="queries per search call")
    add_verify_argument(search)
    _common(search)
    search.set_defaults(func=cmd_search)
