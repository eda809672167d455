"""``rerank bench budgets | load``: the benchmark commands. The harnesses (:mod:`rerank.bench.budgets`,
:mod:`rerank.bench.loadbench`) are imported only when a benchmark runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..aggregation.registry import names
from ..cli_options import (
    CONTEXT,
    EXIT_BAD_INPUT,
    EXIT_USAGE,
    FOLDER,
    Fractions,
    NameList,
    command_line,
    engine_options,
    fail,
    namespace,
    quiet_option,
    store_option,
)
from . import PHASES

DEFAULT_SAMPLERS = "all,random,window,skip,heapsort,quicksort,sliding,active,refine"
DEFAULT_AGGREGATORS = "bt,hodgerank,borda,greedy,ebc"


@click.group("bench", context_settings=CONTEXT, short_help="benchmarks: comparison budgets, server load",
             help="Benchmarks: `budgets` (effectiveness against comparisons per query) and `load` (throughput and "
                  "latency of a gRPC server).")
def bench() -> None:
    pass


@bench.command(
    "budgets", context_settings=CONTEXT, short_help="nDCG@10 against comparisons per query, from cached preferences",
    help="Replay every sampler x calibration x aggregator x budget on a TREC collection from the model's "
         "preferences (asked once, cached), and write results.csv, summary.md and a plot of nDCG@10 against "
         "comparisons per query. List options take names separated by commas, and may be repeated.",
)
@click.option("--dataset", required=True, type=FOLDER,
              help="folder with corpus.jsonl, queries.tsv, qrels.txt, run.*.trec")
@click.option("--model", default="minilm", show_default=True,
              help="model spec (minilm, smollm-prp, oracle:noise=N,bias=B, ...)")
@click.option("--depth", type=int, default=100, show_default=True, help="re-rank the top K")
@click.option("--samplers", type=NameList(names("sampler")), multiple=True, default=[DEFAULT_SAMPLERS],
              show_default=True, metavar="NAME[,NAME...]", help="samplers to replay")
@click.option("--aggregators", type=NameList(names("aggregator")), multiple=True, default=[DEFAULT_AGGREGATORS],
              show_default=True, metavar="NAME[,NAME...]", help="aggregators to replay")
@click.option("--calibrations", type=NameList(names("calibration")), multiple=True, default=["symmetric,bias"],
              show_default=True, metavar="NAME[,NAME...]", help="order calibrations to replay")
@click.option("--budgets", type=Fractions(), multiple=True, default=["0.02,0.05,0.1,0.2,0.33,0.5,1.0"],
              show_default=True, metavar="B[,B...]", help="budgets to replay: fractions of k(k-1) or percentages")
@click.option("--repeats", type=int, default=2, show_default=True,
              help="runs per configuration, with seeds 0..N-1 for the randomised samplers; nDCG@10 is their mean")
@click.option("--max-queries", type=int, default=None, help="only the first N judged queries (default all)")
@click.option("--cache", type=FOLDER, default="bench/cache/preferences", show_default=True,
              help="preference cache folder")
@click.option("--defaults/--no-defaults", default=True, show_default=True,
              help="add the request defaults (RankOptions(): auto sampler, first-stage prior) as a row of the grid")
@click.option("--out", required=True, type=FOLDER, help="output folder")
@quiet_option
@engine_options
@click.pass_context
def budgets(ctx: click.Context, **params: Any) -> int:
    return cmd_bench_budgets(namespace(params), ctx)


def _flat(groups: Any) -> list[Any]:
    return [item for group in groups for item in group]


def cmd_bench_budgets(args: Any, ctx: click.Context) -> int:
    from ..distributed import RayOptions, check_engine_arguments, ray_mapper
    from ..pipeline import RequestError
    from .budgets import PreferenceScorer, run_budget_bench

    command = command_line(ctx)
    try:
        check_engine_arguments(args)
        map_prefs = None
        if args.engine == "ray":
            scorer = PreferenceScorer(args.model, args.dataset)
            map_prefs = ray_mapper(scorer, "preferences", RayOptions.from_args(args))
        summary = run_budget_bench(
            Path(args.dataset), args.model, args.depth, _flat(args.samplers), _flat(args.aggregators),
            _flat(args.calibrations), _flat(args.budgets), args.repeats, Path(args.out), Path(args.cache),
            args.max_queries, command, map_prefs=map_prefs, quiet=args.quiet, defaults=args.defaults,
        )
    except RequestError as exc:
        return fail(str(exc), EXIT_USAGE)
    except (OSError, ValueError, RuntimeError) as exc:
        return fail(str(exc), EXIT_BAD_INPUT)
    for fraction, row in summary.get("best", {}).items():
        share = row["share_of_all_pairs"]
        print(f"{float(fraction):>5.0%}  {row['comparisons_per_query']:7.0f} comparisons/query  "
              f"nDCG@10 {row['ndcg10_mean']:.4f}  {row['sampler']}+{row['calibration']}+{row['aggregator']}"
              + ("" if share is None else f"  ({share:.1%} of all pairs)"))
    for fraction, row in summary.get("defaults", {}).items():
        print(f"{float(fraction):>5.0%}  defaults nDCG@10 {row['ndcg10_mean']:.4f}: {row['share_of_grid_best']:.1%} "
              f"of the grid's best ({row['grid_best_config']})")
    print(f"results in {args.out}/results.csv, summary.md, ndcg_vs_comparisons.png")
    return 0


@bench.command(
    "load", context_settings=CONTEXT, short_help="throughput and latency of a running (or started) gRPC server",
    help="Send Rerank requests from concurrent clients to a gRPC server (a running one, or one started for the "
         "run) and report throughput and latency percentiles; results merge into OUT/NAME.json and .md.",
)
@click.option("--target", default=None, help="HOST:PORT of a running server (default: start one)")
@click.option("--server-pid", type=int, default=None, help="pid of --target, for its RSS")
@click.option("--model", default="minilm", show_default=True, help="model name")
@store_option
@click.option("--data", type=FOLDER, default=None,
              help="folder with trec-dl-2019-passage (default $RERANK_DATA or ../shared/data)")
@click.option("--phases", type=NameList(PHASES), default=",".join(PHASES), show_default=True,
              metavar="PHASE[,PHASE...]", help="phases to run")
@click.option("--ks", default="20,100", show_default=True, help="candidates per request (comma list)")
@click.option("--clients", default="1,8,32", show_default=True, help="concurrent clients (comma list)")
@click.option("--seconds", type=float, default=15.0, show_default=True, help="seconds per throughput config")
@click.option("--compare-seconds", type=float, default=15.0, show_default=True,
              help="seconds per server / in-process run of the compare phase")
@click.option("--compare-reps", type=int, default=3, show_default=True, help="repetitions of the compare phase")
@click.option("--compare-ks", default="20,100", show_default=True,
              help="candidates per request in the compare phase (comma list)")
@click.option("--patterns", type=NameList(["steady", "bursty"]), default="steady,bursty", show_default=True,
              help="traffic patterns of the compare phase")
@click.option("--client-paths", type=NameList(["stub", "client"]), default="stub,client", show_default=True,
              help="server call paths: stub (bare generated stub), client (RerankClient.rerank)")
@click.option("--overhead-pairs", type=int, default=12, show_default=True, help="paired calls")
@click.option("--overhead-fake-pairs", type=int, default=300, show_default=True,
              help="paired calls against a zero-cost fake model server (0 = skip)")
@click.option("--memory-seconds", type=float, default=60.0, show_default=True, help="memory run length")
@click.option("--model-cache", type=int, default=0, show_default=True, metavar="N",
              help="texts the model keeps encoded between calls (0: the workload repeats its requests, so a "
                   "cache would answer them from memory and measure nothing)")
@click.option("--max-wait-ms", type=float, default=5.0, show_default=True, help="server --max-wait-ms")
@click.option("--linger-ms", type=float, default=0.0, show_default=True, help="server --linger-ms")
@click.option("--out", type=FOLDER, default="bench/results", show_default=True, help="results folder")
@click.option("--name", default="load", show_default=True, help="results file name without suffix")
def load(**params: Any) -> int:
    from .loadbench import run

    args = namespace(params)
    args.patterns, args.client_paths = ",".join(args.patterns), ",".join(args.client_paths)
    try:
        return run(args)
    except (OSError, ValueError) as exc:
        return fail(str(exc), EXIT_BAD_INPUT)
