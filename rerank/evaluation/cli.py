"""``rerank eval``: trec_eval measures of a TREC run against qrels (through pytrec_eval, see
:mod:`rerank.evaluation.measures`).

The default output is trec_eval's (``measure<TAB>all<TAB>value``, with ``--per-query`` the per-query lines
first, as ``trec_eval -q``); ``--json`` one JSON object. Exit 0 on success, 1 on a missing, unreadable or
malformed file (one line naming file and line), 2 on an unknown measure or option.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, NoReturn

import click

from .trec import read_qrels, read_run

if TYPE_CHECKING:
    from .measures import Evaluation

DEFAULT_METRICS = "ndcg_cut_10,map,recip_rank,recall_100"
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"rerank: error: {message}", err=True)
    click.get_current_context().exit(code)
    raise AssertionError  # unreachable: exit raises


def _value(measure: str, value: float) -> str:
    return str(round(value)) if measure.startswith("num_") else f"{value:.4f}"


def _table(result: Evaluation, per_query: bool) -> str:
    rows = [("num_q", "all", str(len(result.per_query)))]
    if per_query:
        rows = [(m, qid, _value(m, values[m])) for qid, values in result.per_query.items() for m in result.measures]
        rows.append(("num_q", "all", str(len(result.per_query))))
    rows += [(m, "all", _value(m, result.means[m])) for m in result.measures]
    return "".join(f"{m:<22}\t{qid}\t{value}\n" for m, qid, value in rows)


def _json(result: Evaluation, per_query: bool) -> str:
    record = {
        "measures": result.measures, "means": result.means, "queries": len(result.per_query),
        "rel_level": result.rel_level, "complete": result.complete,
        "run_only_queries": result.run_only, "missing_queries": result.missing,
        **({"per_query": result.per_query} if per_query else {}),
    }
    return json.dumps(record, indent=2) + "\n"


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--qrels", "qrels_path", required=True, metavar="FILE",
              help="TREC qrels: 'qid iter docid grade' per line")
@click.option("--run", "run_path", required=True, metavar="FILE",
              help="TREC run: 'qid Q0 docid rank score tag' per line; - reads stdin")
@click.option("--metrics", "metrics", multiple=True, default=[DEFAULT_METRICS], show_default=True,
              metavar="NAMES", help="trec_eval measure names, comma-separated or repeated (ndcg_cut_10, map, "
              "recip_rank, recall_100, P_10, bpref, ...; also ndcg@10, mrr, recall@100, p@10)")
@click.option("--rel-level", type=int, default=1, show_default=True,
              help="lowest grade binary measures (MAP, RR, recall, P) count as relevant, as trec_eval -l; "
              "TREC Deep Learning uses 2")
@click.option("--complete", is_flag=True,
              help="average over every qrels query, one missing from the run scoring 0 (trec_eval -c); by "
              "default only queries in both the run and the qrels count")
@click.option("--per-query", is_flag=True, help="also each query's values (as trec_eval -q)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object instead of trec_eval's table")
def eval_command(qrels_path: str, run_path: str, metrics: tuple[str, ...], rel_level: int, complete: bool,
                 per_query: bool, as_json: bool) -> None:
    """Evaluate a TREC run against qrels with trec_eval's measures (via pytrec_eval).

    Queries of the run without judgments are not evaluated and queries of the qrels missing from the run are
    left out (or score 0 with --complete), as trec_eval does; both are counted on stderr."""
    try:  # pytrec_eval is imported when the command runs, not when the command tree is built
        from .measures import UnknownMeasureError, evaluate_run, trec_measure
    except ImportError as exc:
        _fail(f"rerank eval needs pytrec_eval (pip install 'rerank[eval]'): {exc}", EXIT_BAD_INPUT)
    names = [name for value in metrics for name in value.split(",") if name.strip()]
    if not names:
        _fail("--metrics names no measure", EXIT_USAGE)
    try:
        for name in names:
            trec_measure(name)
    except UnknownMeasureError as exc:
        _fail(f"--metrics: {exc}", EXIT_USAGE)
    try:
        qrels = read_qrels(qrels_path)
        run = read_run(run_path)
    except OSError as exc:
        which = "--qrels" if exc.filename == qrels_path else "--run"
        _fail(f"cannot read {which} {exc.filename or run_path!r}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    except ValueError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    if not qrels:
        _fail(f"--qrels {qrels_path}: no judgments", EXIT_BAD_INPUT)
    result = evaluate_run(run, qrels, names, rel_level=rel_level, complete=complete)
    if not result.per_query:
        _fail(f"no query of the run {'stdin' if run_path == '-' else run_path} has judgments in {qrels_path} "
              f"({len(run)} queries in the run, {len(qrels)} judged)", EXIT_BAD_INPUT)
    for note in result.notes():
        click.echo(f"rerank: note: {note}", err=True)
    click.echo(_json(result, per_query) if as_json else _table(result, per_query), nl=False)
