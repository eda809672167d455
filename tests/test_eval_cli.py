"""`rerank eval` (rerank.evaluation.cli.eval_command) on the real TREC DL 2019 qrels and BM25 run, through
click's CliRunner: trec_eval's measures via pytrec_eval, checked against the published BM25 figures of the
data folder and against our own per-ranking metrics; queries left out are counted; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rerank.evaluation import ndcg_at_k, rank_docs, read_qrels, read_run, reciprocal_rank
from rerank.evaluation.cli import eval_command

DEFAULT = ("ndcg_cut_10", "map", "recip_rank", "recall_100")


@pytest.fixture(scope="module")
def dl19(data_dir: Path) -> Path:
    return data_dir / "trec-dl-2019-passage"


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(eval_command, list(args), input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def table(out: str) -> dict[tuple[str, str], str]:
    return {(m.strip(), q): v for m, q, v in (line.split("\t") for line in out.splitlines())}


def test_default_table_gives_the_published_bm25_figures(dl19: Path) -> None:
    code, out, err = invoke("--qrels", str(dl19 / "qrels.txt"), "--run", str(dl19 / "run.bm25.top100.trec"),
                            "--rel-level", "2")
    assert code == 0 and err == ""  # run and qrels hold the same 43 queries: nothing to report
    rows = table(out)
    assert rows[("num_q", "all")] == "43"
    # the data folder's README: BM25 top 100 on DL19, binary measures at relevance >= 2
    expected = {"ndcg_cut_10": "0.5058", "map": "0.2476", "recip_rank": "0.7036", "recall_100": "0.4910"}
    assert {m: rows[(m, "all")] for m in DEFAULT} == expected
    assert [line.split("\t")[0].strip() for line in out.splitlines()] == ["num_q", *DEFAULT]  # trec_eval's order


@pytest.mark.parametrize("rel_level", [1, 2])
@pytest.mark.parametrize("reverse", [False, True])
def test_per_query_values_agree_with_our_metrics(dl19: Path, tmp_path: Path, rel_level: int, reverse: bool) -> None:
    """nDCG@10 and RR per query from the library equal ours to 1e-6 (on BM25's order and on its reverse)."""
    run = read_run(dl19 / "run.bm25.top100.trec")
    qrels = read_qrels(dl19 / "qrels.txt")
    path = dl19 / "run.bm25.top100.trec"
    if reverse:
        path = tmp_path / "reversed.trec"
        run = {q: {d: -s for d, s in docs.items()} for q, docs in run.items()}
        path.write_text("".join(f"{q} Q0 {d} 1 {s} rev\n" for q, docs in run.items() for d, s in docs.items()))
    code, out, _ = invoke("--qrels", str(dl19 / "qrels.txt"), "--run", str(path), "--per-query", "--json",
                          "--rel-level", str(rel_level))
    assert code == 0
    record = json.loads(out)
    assert record["queries"] == 43 and record["rel_level"] == rel_level and record["measures"] == list(DEFAULT)
    for qid, row in record["per_query"].items():
        ranking = rank_docs(run[qid])
        assert row["ndcg_cut_10"] == pytest.approx(ndcg_at_k(ranking, qrels[qid], 10), abs=1e-6)
        assert row["recip_rank"] == pytest.approx(reciprocal_rank(ranking, qrels[qid], rel_level), abs=1e-6)
    means = record["means"]
    assert means["map"] == pytest.approx(sum(r["map"] for r in record["per_query"].values()) / 43, abs=1e-12)


def test_rel_level_changes_binary_measures_only(dl19: Path) -> None:
    args = ["--qrels", str(dl19 / "qrels.txt"), "--run", str(dl19 / "run.bm25.top100.trec"), "--json"]
    one, two = (json.loads(invoke(*args, "--rel-level", level)[1])["means"] for level in ("1", "2"))
    assert one["ndcg_cut_10"] == two["ndcg_cut_10"]  # nDCG uses the grades themselves
    assert one["map"] > two["map"] and one["recall_100"] != two["recall_100"]


def test_run_from_stdin_short_names_and_per_query_table(dl19: Path) -> None:
    text = (dl19 / "run.bm25.top100.trec").read_text()
    code, out, _ = invoke("--qrels", str(dl19 / "qrels.txt"), "--run", "-", "--metrics", "ndcg@10,mrr",
                          "--metrics", "P_10", "--per-query", "--rel-level", "2", stdin=text)
    assert code == 0
    rows = table(out)
    assert rows[("ndcg_cut_10", "all")] == "0.5058" and rows[("recip_rank", "all")] == "0.7036"
    assert ("P_10", "all") in rows
    assert sum(1 for m, q in rows if q != "all") == 43 * 3


def test_queries_left_out_are_counted_and_complete_counts_them_as_zero(dl19: Path, tmp_path: Path) -> None:
    lines = (dl19 / "run.bm25.top100.trec").read_text().splitlines()
    qids = list(dict.fromkeys(line.split()[0] for line in lines))[:3]
    part = tmp_path / "part.trec"
    part.write_text("\n".join([*(x for x in lines if x.split()[0] in qids), "999999 Q0 D1 1 3.5 bm25"]) + "\n")
    args = ["--qrels", str(dl19 / "qrels.txt"), "--run", str(part), "--json", "--per-query"]
    code, out, err = invoke(*args)
    assert code == 0
    notes = err.splitlines()
    assert len(notes) == 2
    assert notes[0].startswith("rerank: note: 1 queries of the run have no judgments") and "999999" in notes[0]
    assert notes[1].startswith("rerank: note: 40 judged queries are not in the run and are not evaluated")
    subset = json.loads(out)
    assert subset["queries"] == 3 and subset["run_only_queries"] == ["999999"] and len(subset["missing_queries"]) == 40
    code, out, err = invoke(*args, "--complete")
    complete = json.loads(out)
    assert code == 0 and complete["queries"] == 43 and "--complete" in err
    for m in DEFAULT:
        assert complete["means"][m] == pytest.approx(subset["means"][m] * 3 / 43, abs=1e-12)
        assert all(complete["per_query"][q][m] == 0.0 for q in complete["missing_queries"])


@pytest.mark.parametrize(("make", "where"), [
    (lambda p: None, "cannot read --run"),
    (lambda p: p.mkdir(), "cannot read --run"),
    (lambda p: p.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d2 x 1.0 t\n"), ":2: rank is not an integer"),
    (lambda p: p.write_text("q1 Q0 d1 1 2.0\n"), ":1: expected 6 fields"),
    (lambda p: p.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d1 2 1.0 t\n"), ":2: duplicate document 'd1'"),
    (lambda p: p.write_bytes(b"q1 Q0 d\xff 1 2.0 t\n"), "not UTF-8"),
    (lambda p: p.write_text("x Q0 d1 1 2.0 t\n"), "no query of the run"),
])
def test_bad_run_files_are_one_line_and_exit_1(dl19: Path, tmp_path: Path, make, where: str) -> None:
    run = tmp_path / "run.trec"
    make(run)
    code, out, err = invoke("--qrels", str(dl19 / "qrels.txt"), "--run", str(run))
    assert code == 1 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("rerank: error: ") and where in line


def test_bad_qrels_and_unknown_measures(dl19: Path, tmp_path: Path) -> None:
    run = str(dl19 / "run.bm25.top100.trec")
    bad = tmp_path / "qrels.txt"
    bad.write_text("1 0 d1 2\n1 0 d2 high\n")
    for qrels, where in [(tmp_path / "none.txt", "cannot read --qrels"), (bad, "qrels.txt:2: relevance is not")]:
        code, _, err = invoke("--qrels", str(qrels), "--run", run)
        assert code == 1 and len(err.splitlines()) == 1 and where in err
    code, out, err = invoke("--qrels", str(dl19 / "qrels.txt"), "--run", run, "--metrics", "map,ndcg_cutt_10")
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert "unknown measure 'ndcg_cutt_10'" in line and "ndcg_cut" in line and "recip_rank" in line
    code, _, err = invoke("--qrels", str(dl19 / "qrels.txt"), "--run", run, "--metrics", "mrr@10")
    assert code == 2 and "unknown measure 'mrr@10'" in err
