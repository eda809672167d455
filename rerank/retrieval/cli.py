"""``rerank index build | add | search``: the command-line face of the retrieval package.

``index`` is a click group (``rerank.cli`` adds it to the ``rerank`` tree; ``python -m rerank.retrieval``
runs it too); each command hands its parameters to a ``cmd_*(args) -> exit code`` function.
Errors are one line on stderr, ``rerank: error: ...``: exit 1 for bad input (files, index folders, models), 2 for
bad usage (options that do not fit together).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from ..cli_options import (
    CONTEXT,
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    FOLDER,
    IN_FILE,
    OUT_FILE,
    engine_options,
    fail,
    namespace,
    positive,
    quiet_option,
    run_command,
    store_option,
    verify_option,
)
from ..files import first_unreadable, write_text_atomic
from .index import INDEX_TYPES

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


def _progress(args: Any, label: str, unit: str = "docs") -> Any:
    from ..progress import Progress

    return Progress(None, desc=label, unit=unit, quiet=getattr(args, "quiet", False))


def _errors() -> tuple[type[BaseException], ...]:
    from rerank.models import ModelError

    from .errors import RetrievalError

    return RetrievalError, ModelError


def _param_args(args: Any, index_type: str) -> tuple[dict[str, int], str | None]:
    """Index parameters given on the command line, or a usage error for one that does not fit the type."""
    from .index import _BUILD_KEYS

    given = {key: getattr(args, key) for key in _PARAM_FLAGS if getattr(args, key, None) is not None}
    bad = [_PARAM_FLAGS[k] for k in given if k not in _BUILD_KEYS[index_type]]
    if bad:
        return given, f"{', '.join(sorted(bad))} does not apply to --index {index_type}"
    return given, None


def cmd_build(args: Any) -> int:
    from ..distributed import RayOptions, check_engine_arguments, ray_mapper
    from .build import TextEmbedder, build_index

    params, usage = _param_args(args, args.index)
    try:
        check_engine_arguments(args)
    except ValueError as exc:
        usage = str(exc)
    if usage:
        return fail(usage, EXIT_USAGE)
    unreadable = first_unreadable([("--corpus", args.corpus)])
    if unreadable:
        return fail(unreadable, EXIT_BAD_INPUT)
    map_batches = None
    if args.engine == "ray":
        map_batches = ray_mapper(TextEmbedder(args.model, args.store), "embed", RayOptions.from_args(args))
    try:
        report = build_index(
            args.corpus, args.out, args.model, index_type=args.index, params=params, skip_empty=args.skip_empty,
            force=args.force, batch_size=args.batch_size, progress=_progress(args, "embed"), store=args.store,
            map_batches=map_batches,
        )
    except (*_errors(), ValueError) as exc:
        return fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        return fail(f"cannot write index {args.out}: {exc.strerror or exc}", EXIT_BAD_INPUT)
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


def cmd_add(args: Any) -> int:
    from .build import add_documents

    unreadable = first_unreadable([("--corpus", args.corpus)])
    if unreadable:
        return fail(unreadable, EXIT_BAD_INPUT)

    try:
        report = add_documents(
            args.index, args.corpus, args.model, skip_empty=args.skip_empty, batch_size=args.batch_size,
            progress=_progress(args, "embed"), store=args.store, verify=args.verify,
        )
    except (*_errors(), ValueError) as exc:
        return fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        return fail(f"cannot write index {args.index}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    skipped = f" ({report.skipped_empty} empty skipped)" if report.skipped_empty else ""
    print(
        f"added {report.added:,} documents{skipped} to {report.path}: {report.count:,} in all; "
        f"{report.docs_per_s:,.1f} docs/s"
    )
    print(f"a server started with --index {report.path} searches the new documents after a restart")
    return EXIT_OK


def cmd_search(args: Any) -> int:
    import io

    from rerank.evaluation import write_run

    from .corpus import read_query_file
    from .index import SEARCH_KEYS, Index
    from .manifest import IndexManifest

    if any(c.isspace() for c in args.tag) or not args.tag:
        return fail(f"--tag must be non-empty without whitespace, got {args.tag!r}", EXIT_USAGE)
    if args.output != "-" and Path(args.output).is_dir():
        return fail(f"--output {args.output} is a folder", EXIT_BAD_INPUT)
    unreadable = first_unreadable([("--queries", args.queries)])
    if unreadable:
        return fail(unreadable, EXIT_BAD_INPUT)
    try:
        manifest = IndexManifest.read(args.index)
        overrides = {"efSearch": args.ef_search, "nprobe": args.nprobe, "k_factor": args.k_factor}
        bad = [_PARAM_FLAGS[k] for k, v in overrides.items()
               if v is not None and k not in SEARCH_KEYS.get(manifest.index_type, set())]
        if bad:
            return fail(f"{', '.join(sorted(bad))} does not apply to a {manifest.index_type} index", EXIT_USAGE)
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
        return fail(str(exc), EXIT_BAD_INPUT)
    buf = io.StringIO()
    write_run(run, buf, tag=args.tag)
    try:
        write_text_atomic(args.output, buf.getvalue())
    except OSError as exc:
        return fail(f"cannot write --output {args.output!r}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    if not getattr(args, "quiet", False):
        sys.stderr.write(
            f"searched {len(qids):,} queries (top {args.k}) in {elapsed:.1f} s on {index.device} "
            f"({index.index_type}, {index.count:,} documents)\n"
        )
    return EXIT_OK


def _fmt_params(params: Any) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in dict(params).items()) + ")" if params else "(exact)"


def _param(flag: str, dest: str, text: str) -> Any:
    return click.option(flag, dest, type=int, default=None, callback=positive, help=text)


_batch_size = click.option("--batch-size", type=int, default=256, show_default=True, callback=positive,
                           help="texts per embedding call")
_skip_empty = click.option("--skip-empty", is_flag=True, help="leave out documents with empty text")
_index_model = click.option("--model", default=None, help="bi-encoder (default: the one the index names)")


@click.group("index", context_settings=CONTEXT,
             short_help="first-stage dense retrieval: build, extend and search a FAISS index",
             help="Embed a JSONL corpus with a bi-encoder into a FAISS index plus a SQLite document store, add "
                  "documents to it, and search it into a TREC run.")
def index() -> None:
    pass


@index.command("build", context_settings=CONTEXT, short_help="embed a corpus and write an index folder (atomically)",
               help="Embed a JSONL corpus with a bi-encoder and write an index folder: FAISS index, SQLite "
                    "document store and a manifest with the model's identity and the files' checksums. The folder "
                    "is replaced only when the new one is complete; the same corpus, model and parameters again "
                    "find it up to date.")
@click.option("--corpus", required=True, type=IN_FILE, help="corpus JSON lines {id, text[, title, ...]}")
@click.option("--out", required=True, type=FOLDER, help="index folder to write (replaced only when complete)")
@click.option("--model", default="minilm", show_default=True,
              help="bi-encoder: embedded or store name, or folder")
@click.option("--index", type=click.Choice(INDEX_TYPES), default="flat", show_default=True,
              help="index type (flat: exact)")
@_skip_empty
@click.option("--force", is_flag=True, help="rebuild even when the index is up to date")
@_batch_size
@_param("--hnsw-m", "M", "hnsw: links per node (32)")
@_param("--ef-construction", "efConstruction", "hnsw: build beam width (80)")
@_param("--ef-search", "efSearch", "hnsw: default search beam width (128)")
@_param("--nlist", "nlist", "ivf, ivfpq: inverted lists (auto)")
@_param("--nprobe", "nprobe", "ivf, ivfpq: default lists searched")
@_param("--pq-m", "pq_m", "ivfpq: sub-quantizers (dim/8)")
@_param("--nbits", "nbits", "ivfpq: bits per sub-quantizer (8)")
@_param("--k-factor", "k_factor", "ivfpq: exact re-scoring of k_factor * k PQ candidates (8)")
@_param("--train-points", "train_points", "ivf, ivfpq: vectors sampled for training")
@store_option
@quiet_option
@engine_options
def build(**params: Any) -> int:
    return cmd_build(namespace(params))


@index.command("add", context_settings=CONTEXT, short_help="append documents (new ids only) to an index folder",
               help="Append the documents of a corpus (new ids only) to an index folder, atomically. A server "
                    "started with `rerank serve --index` on this folder keeps serving the index it opened: "
                    "restart it to search the new documents.")
@click.option("--index", required=True, type=FOLDER, help="index folder")
@click.option("--corpus", required=True, type=IN_FILE, help="corpus JSON lines with the new documents")
@_index_model
@_skip_empty
@_batch_size
@verify_option
@store_option
@quiet_option
def add(**params: Any) -> int:
    return cmd_add(namespace(params))


@index.command("search", context_settings=CONTEXT, short_help="search an index with a queries file into a TREC run",
               help="Embed each query of a qid<TAB>text file with the index's model, search the index (its files "
                    "checked against their checksums first) and write the top k as a TREC run.")
@click.option("--index", required=True, type=FOLDER, help="index folder")
@click.option("--queries", required=True, type=IN_FILE, help="queries TSV: qid<TAB>text")
@click.option("--k", type=int, default=100, show_default=True, callback=positive, help="documents per query")
@click.option("--output", type=OUT_FILE, default="-", show_default=True, help="TREC run file, or - for stdout")
@click.option("--tag", default="dense", show_default=True, help="run tag (column 6 of the run)")
@_index_model
@click.option("--ef-search", type=int, default=None, callback=positive, help="hnsw: search beam width")
@click.option("--nprobe", type=int, default=None, callback=positive, help="ivf, ivfpq: lists searched")
@click.option("--k-factor", "k_factor", type=int, default=None, callback=positive,
              help="ivfpq: exact re-scoring factor")
@click.option("--batch-size", type=int, default=256, show_default=True, callback=positive,
              help="queries per search call")
@verify_option
@store_option
@quiet_option
def search(**params: Any) -> int:
    return cmd_search(namespace(params))


# ``python -m rerank.retrieval index ...``: the same commands (rerank/retrieval/__main__.py)
retrieval_cli = click.Group("python -m rerank.retrieval", commands=[index], context_settings=CONTEXT,
                            help="First-stage retrieval: `python -m rerank.retrieval index ...` is `rerank index ...`.")


def main(argv: list[str] | None = None) -> int:
    return run_command(retrieval_cli, argv, "python -m rerank.retrieval")
