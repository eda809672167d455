"""The ``rerank`` command line: a thin face over :mod:`rerank.pipeline`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn

from . import __version__
from .aggregation.registry import names
from .files import write_text_atomic
from .retrieval.cli import add_index_parser
from .server.cli import add_bench_load_arguments, add_serve_arguments, run_bench_load, run_serve

if TYPE_CHECKING:
    from .pipeline import RankOptions

# The engine (pipeline, comparison parsing) is imported inside the commands that run it, so that
# ``rerank --help`` and argument errors cost no more than the argument parser (tests/test_cli_startup.py).

EXIT_BAD_INPUT = 1
EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line on stderr (exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _open_input(path: str) -> contextlib.AbstractContextManager[IO[str]]:
    if path == "-":
        return contextlib.nullcontext(sys.stdin)
    return open(path, encoding="utf-8")


def _write_output(path: str, lines: list[str]) -> None:
    """Write all lines to stdout, or atomically to a file (no half-written file on failure)."""
    write_text_atomic(path, "".join(line + "\n" for line in lines))


def cmd_aggregate(args: argparse.Namespace) -> int:
    methods, calibrations = names("aggregator"), names("calibration")
    if args.method not in methods:
        return _fail(f"unknown --method {args.method!r}; known: {', '.join(methods)}", EXIT_USAGE)
    if args.calibration not in calibrations:
        known = ", ".join(calibrations)
        return _fail(f"unknown --calibration {args.calibration!r}; known: {known}", EXIT_USAGE)
    from .comparison_io import InputError, read_comparison_groups
    from .pipeline import aggregate_group

    try:
        handle = _open_input(args.input)
    except OSError as exc:
        return _fail(f"cannot read --input {args.input!r}: {exc.strerror}", EXIT_BAD_INPUT)
    try:
        with handle as lines:
            groups = read_comparison_groups(lines)
    except InputError as exc:
        return _fail(f"{args.input if args.input != '-' else 'stdin'}: {exc}", EXIT_BAD_INPUT)
    except UnicodeDecodeError:
        return _fail(f"cannot read --input {args.input!r}: not UTF-8 text", EXIT_BAD_INPUT)
    records = [aggregate_group(g, args.method, args.calibration, seed=args.seed) for g in groups]
    try:
        _write_output(args.output, [json.dumps(r) for r in records])
    except OSError as exc:
        return _fail(f"cannot write --output {args.output!r}: {exc.strerror}", EXIT_BAD_INPUT)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .models import ModelError, ParityError, export_model

    try:
        manifest = export_model(
            args.model, args.kind, args.out, name=args.name or None, quantize=args.quantize,
            max_query_tokens=args.max_query_tokens, max_passage_tokens=args.max_passage_tokens,
            overwrite=args.overwrite,
        )
    except (ModelError, ParityError, FileExistsError, OSError) as exc:
        return _fail(f"export failed: {exc}", EXIT_BAD_INPUT)
    parity = {name: dict(v.parity) for name, v in manifest.variants.items()}
    print(json.dumps({"name": manifest.name, "kind": manifest.kind, "out": str(args.out), "parity": parity}))
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .models import ModelStore, list_models

    infos = list_models(ModelStore(args.store))
    if args.json:
        for info in infos:
            print(json.dumps(asdict(info)))
        return 0
    header = ("name", "kind", "provider", "max query", "max passage", "variants", "exported")
    rows = [header] + [
        (i.name, i.kind, i.provider or "-", str(i.max_query_tokens or "-"), str(i.max_passage_tokens or "-"),
         ",".join(i.variants) or "-", "yes" if i.exported else "no")
        for i in infos
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_models_ensure(args: argparse.Namespace) -> int:
    from .models import EMBEDDED, ModelError, ModelStore, ParityError, ensure_embedded

    names = args.names or ["minilm"]
    for name in names:
        if name not in EMBEDDED:
            return _fail(f"unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED))}", EXIT_USAGE)
    store = ModelStore(args.store)
    for name in names:
        try:
            manifest = ensure_embedded(name, store=store, quantize=args.quantize)
        except (ModelError, ParityError, OSError) as exc:
            return _fail(f"cannot build embedded model {name!r}: {exc}", EXIT_BAD_INPUT)
        print(f"{manifest.name}: ready in {store.path(manifest.name)} ({', '.join(manifest.variants)})")
    return 0


def parse_budget(text: str | None) -> int | float | None:
    """``--budget``: a whole number of comparisons, a fraction in (0, 1] (``0.1``) or a percentage (``10%``)."""
    if text is None or text == "":
        return None
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100.0
        return int(text) if text.isdigit() else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid budget {text!r}: use a count, a fraction or a percentage") from None


def _rank_options(args: argparse.Namespace) -> RankOptions:
    from .pipeline import RankOptions

    return RankOptions(
        sampler=args.sampler, budget=args.budget, aggregator=args.aggregator, calibration=args.calibration,
        fusion=args.fusion, seed=args.seed, both_orders=args.both_orders, prior_weight=args.prior_weight,
    )


def add_ranking_arguments(parser: argparse.ArgumentParser) -> None:
    """The ranking options shared by ``rank`` (as in the API)."""
    parser.add_argument("--model", action="append", default=None,
                        help="model spec, repeatable (fused with --fusion): minilm (default), a store name, a "
                             "folder, or oracle:noise=N,bias=B (needs --qrels)")
    parser.add_argument("--fusion", default="rrf", help=f"one of: {', '.join(names('fusion'))} (default rrf)")
    parser.add_argument("--sampler", default="all", help=f"one of: {', '.join(names('sampler'))} (default all)")
    parser.add_argument("--budget", type=parse_budget, default=None,
                        help="comparisons per query: a count, a fraction of k(k-1) or a percentage (default all)")
    parser.add_argument("--aggregator", default="bt", help=f"one of: {', '.join(names('aggregator'))} (default bt)")
    parser.add_argument("--calibration", default="symmetric",
                        help=f"one of: {', '.join(names('calibration'))} (default symmetric)")
    parser.add_argument("--both-orders", action=argparse.BooleanOptionalAction, default=None,
                        help="ask both orders of each pair (default: the sampler's own choice)")
    parser.add_argument("--prior-weight", type=float, default=0.0, help="first-stage prior weight (default 0)")
    parser.add_argument("--top-n", type=int, default=None, help="keep the best N per query (JSON-lines mode)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="max sequences per model batch (default by device: CPU 1, CUDA 64)"
    )


def cmd_rank(args: argparse.Namespace) -> int:
    from .comparison_io import InputError
    from .offline import ResumableOutput, rank_jobs, read_jsonl_jobs, trec_jobs
    from .pipeline import RequestError, TrecData, load_comparator, validate_options

    trec_mode = args.run is not None
    if trec_mode and (args.corpus is None or args.queries is None):
        return _fail("--run needs --corpus and --queries", EXIT_USAGE)
    if not trec_mode and args.input is None:
        return _fail("give --input FILE|- (JSON lines) or --run/--corpus/--queries (TREC mode)", EXIT_USAGE)
    if args.output is None:
        return _fail("--output FILE is required (the output is resumable)", EXIT_USAGE)
    if args.depth < 1:
        return _fail(f"--depth must be >= 1, got {args.depth}", EXIT_USAGE)
    options = _rank_options(args)
    try:
        validate_options(options, 10)
        if args.batch_size is not None and args.batch_size < 1:
            raise RequestError("batch_size", f"must be >= 1, got {args.batch_size}")
        trec = None
        if trec_mode or args.qrels:
            from .evaluation import read_corpus, read_qrels, read_queries, read_run

            trec = TrecData(
                read_qrels(args.qrels) if args.qrels else {},
                read_queries(args.queries) if args.queries else {},
                read_corpus(args.corpus) if args.corpus else {},
            )
        models = [load_comparator(spec, trec=trec, max_batch_size=args.batch_size)
                  for spec in (args.model or ["minilm"])]
        output = ResumableOutput(Path(args.output), overwrite=args.overwrite)
    except RequestError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (OSError, ValueError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    try:
        if trec_mode:
            assert trec is not None
            run = read_run(args.run)
            jobs = trec_jobs(run, trec.queries, trec.corpus, args.depth)
            ranked = rank_jobs(jobs, models, options, output, trec_tag=args.tag, total=len(run))
        else:
            with _open_input(args.input) as lines:
                jobs = read_jsonl_jobs(lines, skip_bad=args.skip_bad, warn=sys.stderr)
                ranked = rank_jobs(jobs, models, options, output, top_n=args.top_n)
    except InputError as exc:
        where = args.run if trec_mode else (args.input if args.input != "-" else "stdin")
        return _fail(f"{where}: {exc}", EXIT_BAD_INPUT)
    except (OSError, ValueError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    finally:
        output.close()
    sys.stderr.write(f"rerank: ranked {ranked} queries ({len(output.done)} done in {args.output})\n")
    return 0


def _names_list(values: list[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def cmd_bench_budgets(args: argparse.Namespace) -> int:
    from .budget_bench import run_budget_bench
    from .pipeline import RequestError

    try:
        budgets = [float(b.rstrip("%")) / (100.0 if b.endswith("%") else 1.0) for b in _names_list(args.budgets)]
    except ValueError:
        return _fail(f"--budgets must be fractions or percentages, got {' '.join(args.budgets)}", EXIT_USAGE)
    command = "rerank bench budgets " + " ".join(sys.argv[3:] if args.command_line is None else args.command_line)
    try:
        summary = run_budget_bench(
            Path(args.dataset), args.model, args.depth, _names_list(args.samplers), _names_list(args.aggregators),
            _names_list(args.calibrations), budgets, args.repeats, Path(args.out), Path(args.cache),
            args.max_queries, command,
        )
    except RequestError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (OSError, ValueError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    best = summary.get("best", {})
    for fraction, row in best.items():
        print(f"{float(fraction):>5.0%}  {row['comparisons_per_query']:7.0f} comparisons/query  "
              f"nDCG@10 {row['ndcg10_mean']:.4f}  {row['sampler']}+{row['calibration']}+{row['aggregator']}  "
              f"({row['share_of_all_pairs']:.1%} of all pairs)")
    print(f"results in {args.out}/results.csv, summary.md, ndcg_vs_comparisons.png")
    return 0


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"rerank: error: {message}\n")
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="rerank", description="Pairwise ranking and re-ranking for retrieval.")
    parser.add_argument("--version", action="version", version=f"rerank {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    agg = sub.add_parser(
        "aggregate",
        help="turn pairwise preferences (JSON lines) into rankings",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            'Reads JSON lines {"a": id, "b": id, "p": float[, "group": g]} where p = P(a preferred to b)\n'
            "as the model saw (a, b) in that order, and writes one JSON line per group with the ranking,\n"
            "the number of comparisons and the order- and transitive-inconsistency rates."
        ),
        epilog=(
            f"methods (--method): {', '.join(names('aggregator'))}\n"
            f"calibrations (--calibration): {', '.join(names('calibration'))}"
        ),
    )
    agg.add_argument("--input", default="-", help="JSON-lines file, or - for stdin (default -)")
    agg.add_argument("--output", default="-", help="output file, or - for stdout (default -)")
    agg.add_argument("--method", default="bt",
                     help=f"aggregator, one of: {', '.join(names('aggregator'))} (default bt)")
    agg.add_argument("--calibration", default="symmetric",
                     help=f"order calibration, one of: {', '.join(names('calibration'))} (default symmetric)")
    agg.add_argument("--seed", type=int, default=0, help="seed for randomised methods (kwiksort)")
    agg.set_defaults(func=cmd_aggregate)

    exp = sub.add_parser("export", help="export a pairwise checkpoint to ONNX (parity-checked)")
    exp.add_argument("--model", required=True, help="checkpoint folder, or an embedded model name")
    exp.add_argument("--kind", required=True, help="bi-encoder, duo-cross-encoder, duo-t5 or prp")
    exp.add_argument("--out", required=True, help="output folder (written atomically)")
    exp.add_argument("--name", default="", help="model name in the manifest (default: the folder name)")
    exp.add_argument("--quantize", choices=["int8"], default=None, help="also write an int8 variant")
    exp.add_argument("--max-query-tokens", type=int, default=None)
    exp.add_argument("--max-passage-tokens", type=int, default=None)
    exp.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    exp.set_defaults(func=cmd_export)

    models = sub.add_parser("models", help="list or build models in the model store")
    models_sub = models.add_subparsers(dest="models_command", required=True, parser_class=OneLineParser)
    lst = models_sub.add_parser("list", help="embedded models and the store's models, with kind and provider")
    lst.add_argument("--store", default=None, help="store folder (default $RERANK_HOME/models)")
    lst.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    lst.set_defaults(func=cmd_models_list)
    ens = models_sub.add_parser("ensure", help="export embedded models into the store (no-op when there)")
    ens.add_argument("names", nargs="*", help="embedded model names (default: minilm)")
    ens.add_argument("--store", default=None, help="store folder (default $RERANK_HOME/models)")
    ens.add_argument("--quantize", choices=["int8"], default=None)
    ens.set_defaults(func=cmd_models_ensure)

    rank = sub.add_parser(
        "rank", help="re-rank candidates offline: JSON lines or a TREC run in, rankings out (resumable)",
        description="JSON-lines mode: --input FILE|- --output FILE; TREC mode: --run RUN --corpus CORPUS.jsonl "
                    "--queries QUERIES.tsv --depth K --output RUN. An interrupted run keeps every finished "
                    "query; rerunning with the same --output continues where it stopped.",
    )
    rank.add_argument("--input", default=None, help='JSON lines {"qid","query","candidates":[{"id","text"}]}')
    rank.add_argument("--output", default=None, help="output file (JSON lines, or a TREC run in TREC mode)")
    rank.add_argument("--run", default=None, help="TREC run with the first-stage candidates")
    rank.add_argument("--corpus", default=None, help="corpus JSON lines {id, text[, title]}")
    rank.add_argument("--queries", default=None, help="queries TSV: qid<TAB>text")
    rank.add_argument("--qrels", default=None, help="TREC qrels (only for the oracle model)")
    rank.add_argument("--depth", type=int, default=100, help="TREC mode: re-rank the top K (default 100)")
    rank.add_argument("--tag", default="rerank", help="TREC run tag")
    rank.add_argument("--skip-bad", action="store_true", help="skip malformed lines (reported) instead of stopping")
    rank.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    add_ranking_arguments(rank)
    rank.set_defaults(func=cmd_rank)

    bench = sub.add_parser("bench", help="benchmarks: comparison budgets, server load")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, parser_class=OneLineParser)
    bud = bench_sub.add_parser("budgets", help="nDCG@10 against comparisons per query, from cached preferences")
    bud.add_argument("--dataset", required=True, help="folder with corpus.jsonl, queries.tsv, qrels.txt, run.*.trec")
    bud.add_argument("--model", default="minilm", help="model spec (minilm, smollm-prp, oracle:noise=N,bias=B, ...)")
    bud.add_argument("--depth", type=int, default=100, help="re-rank the top K (default 100)")
    bud.add_argument("--samplers", nargs="+",
                     default=["all,random,window,skip,heapsort,quicksort,sliding,active,refine"])
    bud.add_argument("--aggregators", nargs="+", default=["bt,hodgerank,borda,greedy,ebc"])
    bud.add_argument("--calibrations", nargs="+", default=["symmetric,bias"])
    bud.add_argument("--budgets", nargs="+", default=["0.02,0.05,0.1,0.2,0.33,0.5,1.0"],
                     help="fractions of k(k-1) (or percentages)")
    bud.add_argument("--repeats", type=int, default=2)
    bud.add_argument("--max-queries", type=int, default=None, help="only the first N judged queries")
    bud.add_argument("--cache", default="bench/cache/preferences", help="preference cache folder")
    bud.add_argument("--out", required=True, help="output folder")
    bud.set_defaults(func=cmd_bench_budgets, command_line=None)

    load = bench_sub.add_parser("load", help="throughput and latency of a running (or started) gRPC server")
    add_bench_load_arguments(load)
    load.set_defaults(func=run_bench_load)

    add_index_parser(sub)

    serve = sub.add_parser("serve", help="start the gRPC re-ranking server (default model: the embedded minilm)")
    add_serve_arguments(serve)
    serve.set_defaults(func=run_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
