"""`rerank rank`: JSON-lines and TREC modes, resuming, bad input (in-process; the `rerank` program's
subprocess smoke test is in tests/test_cli_aggregate.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rerank.evaluation import evaluate, read_qrels, read_run

QUERIES = [
    {"qid": "q1", "query": "what is the capital of France", "candidates": [
        {"id": "cook", "text": "Boil the pasta for ten minutes in salted water."},
        {"id": "paris", "text": "Paris is the capital and largest city of France."},
        {"id": "tax", "text": "Income tax returns are due in April in the United States."}]},
    {"qid": "q2", "query": "how long to boil pasta", "candidates": [
        {"id": "paris", "text": "Paris is the capital and largest city of France."},
        {"id": "cook", "text": "Boil the pasta for ten minutes in salted water."}]},
    {"qid": "q3", "query": "when are tax returns due", "candidates": [
        {"id": "cook", "text": "Boil the pasta for ten minutes in salted water."},
        {"id": "tax", "text": "Income tax returns are due in April in the United States."}]},
]


@pytest.fixture
def run(cli):
    """``run(args, home, stdin="")``: ``rerank rank ARGS`` in-process, answered like a subprocess."""

    def go(args: list[str], home: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
        code, out, err = cli(["rank", *args], stdin, home=home)
        return subprocess.CompletedProcess(args, code, out, err)

    return go


def jsonl(rows: list) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def test_jsonl_mode_with_minilm_resumes_after_a_bad_line(rerank_home: Path, tmp_path: Path, run) -> None:
    out = tmp_path / "out.jsonl"
    broken = jsonl([QUERIES[0], QUERIES[1], '{"qid": "q3", "query": "x"}', QUERIES[2]])
    first = run(["--input", "-", "--output", str(out)], rerank_home, broken)
    assert first.returncode == 1
    assert 'line 3: missing key "candidates"' in first.stderr.strip().splitlines()[-1]
    done = [json.loads(x) for x in out.read_text().splitlines()]
    assert [d["qid"] for d in done] == ["q1", "q2"]  # finished queries are kept
    assert done[0]["ranking"][0]["id"] == "paris"
    assert done[0]["comparisons"] == 6 and "order_inconsistency" in done[0]

    # a rerun over the fixed input continues: q1, q2 are not ranked again, q3 is added
    second = run(["--input", "-", "--output", str(out)], rerank_home, jsonl(QUERIES))
    assert second.returncode == 0, second.stderr
    assert "ranked 1 queries" in second.stderr
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["qid"] for r in records] == ["q1", "q2", "q3"]
    assert records[1]["ranking"][0]["id"] == "cook" and records[2]["ranking"][0]["id"] == "tax"


def test_skip_bad_reports_the_line_and_goes_on(rerank_home: Path, tmp_path: Path, run) -> None:
    out = tmp_path / "out.jsonl"
    rows = jsonl([QUERIES[1], "{oops", QUERIES[2]])
    proc = run(["--input", "-", "--output", str(out), "--skip-bad", "--top-n", "1"], rerank_home, rows)
    assert proc.returncode == 0, proc.stderr
    assert "skipped line 2: not valid JSON" in proc.stderr
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["qid"] for r in records] == ["q2", "q3"] and all(len(r["ranking"]) == 1 for r in records)


def test_a_block_cut_off_mid_write_is_dropped_on_resume(tmp_path: Path, data_dir: Path, run) -> None:
    dl = data_dir / "trec-dl-2019-passage"
    run_file = read_run(dl / "run.bm25.top100.trec")
    small = tmp_path / "small.trec"
    qids = sorted(run_file)[:3]
    small.write_text("".join(
        f"{q} Q0 {d} {i} {s} bm25\n"
        for q in qids for i, (d, s) in enumerate(sorted(run_file[q].items(), key=lambda x: -x[1]), start=1)))
    out = tmp_path / "oracle.trec"
    args = ["--run", str(small), "--corpus", str(dl / "corpus.jsonl"), "--queries", str(dl / "queries.tsv"),
            "--qrels", str(dl / "qrels.txt"), "--depth", "20", "--model", "oracle:noise=0", "--output", str(out)]
    first = run(args, tmp_path)
    assert first.returncode == 0, first.stderr
    full = out.read_text()
    # simulate a crash: the progress file (the set-up, then one line per query) forgets the last query and
    # half a block is left behind
    progress = (out.parent / (out.name + ".progress")).read_text().splitlines()
    assert len(progress) == 4 and "setup" in json.loads(progress[0])
    (out.parent / (out.name + ".progress")).write_text("\n".join(progress[:3]) + "\n")
    with out.open("a") as handle:
        handle.write("garbage line that must disappear\n")
    second = run(args, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "ranked 1 queries" in second.stderr
    assert out.read_text() == full
    qrels = read_qrels(dl / "qrels.txt")
    ranked = evaluate(read_run(out), qrels, measures=("ndcg@10",))[0]["ndcg@10"]
    bm25 = evaluate(read_run(small), qrels, measures=("ndcg@10",))[0]["ndcg@10"]
    assert ranked > bm25  # a noiseless oracle over the top 20 beats BM25
    assert len(read_run(out)[qids[0]]) == len(run_file[qids[0]])  # the rest of the run is kept below


def test_a_budget_that_resolves_to_no_comparison_fails_naming_k_and_the_minimum(tmp_path: Path, data_dir: Path,
                                                                                run) -> None:
    """10% of a 2-candidate query's 2 ordered pairs is 0 comparisons: an error, not a ranking of zeros; and a
    fraction that would be too small for 10 candidates is fine for the query's real k (no early guess of k)."""
    dl = data_dir / "trec-dl-2019-passage"
    run_file = read_run(dl / "run.bm25.top100.trec")
    qid = sorted(run_file)[0]
    small = tmp_path / "small.trec"
    docs = sorted(run_file[qid].items(), key=lambda x: -x[1])
    small.write_text("".join(f"{qid} Q0 {d} {i} {s} bm25\n" for i, (d, s) in enumerate(docs, start=1)))
    common = ["--run", str(small), "--corpus", str(dl / "corpus.jsonl"), "--queries", str(dl / "queries.tsv"),
              "--qrels", str(dl / "qrels.txt"), "--model", "oracle:noise=0"]
    bad = run([*common, "--depth", "2", "--budget", "10%", "--output", str(tmp_path / "bad.trec")], tmp_path)
    assert bad.returncode != 0
    last = bad.stderr.strip().splitlines()[-1]
    assert "--budget" in last and "k = 2 candidates" in last and "at least 1 is needed" in last
    good = run([*common, "--depth", "50", "--budget", "1%", "--output", str(tmp_path / "good.trec")], tmp_path)
    assert good.returncode == 0, good.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["--output", "o.jsonl"], "", 2, "give --input"),
        (["--input", "-"], "", 2, "--output FILE is required"),
        (["--input", "-", "--output", "o.jsonl", "--sampler", "nope"], "", 2, "unknown --sampler 'nope'; known: "),
        (["--input", "-", "--output", "o.jsonl", "--budget", "lots"], "", 2, "invalid budget 'lots'"),
        (["--input", "-", "--output", "o.jsonl", "--sampler", "heapsort", "--window", "3"], "", 2,
         "--window: sampler 'heapsort' does not take it; used by: window, skip"),
        (["--input", "-", "--output", "o.jsonl", "--rounds", "0"], "", 2, "--rounds: must be a whole number"),
        (["--input", "-", "--output", "o.jsonl", "--model", "oracle"], "", 2, "the oracle needs relevance"),
        (["--input", "-", "--output", "o.jsonl", "--model", "no-such-model"], "", 2, "model:"),
        (["--run", "r.trec", "--output", "o.trec"], "", 2, "--run needs --corpus and --queries"),
    ],
)
def test_bad_arguments_fail_with_one_line(args, stdin, code, message, tmp_path, rerank_home, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got, _, err = cli(["rank", *args], stdin, home=rerank_home)
    assert got == code, err
    lines = [x for x in err.strip().splitlines() if x.startswith("rerank")]
    assert len(lines) == 1 and message in lines[0], err


def test_trec_mode_with_minilm_reranks_the_top_and_keeps_the_rest(tmp_path, data_dir, rerank_home, cli) -> None:
    dl = data_dir / "trec-dl-2019-passage"
    bm25 = read_run(dl / "run.bm25.top100.trec")
    qids = sorted(bm25)[:2]
    small = tmp_path / "small.trec"
    small.write_text("".join(
        f"{q} Q0 {d} {i} {s} bm25\n"
        for q in qids for i, (d, s) in enumerate(sorted(bm25[q].items(), key=lambda x: -x[1]), start=1)))  # fmt: skip
    out = tmp_path / "minilm.trec"
    code, _, err = cli(["rank", "--run", str(small), "--corpus", str(dl / "corpus.jsonl"), "--queries",
                        str(dl / "queries.tsv"), "--depth", "10", "--model", "minilm", "--output", str(out)],
                       home=rerank_home)  # fmt: skip
    assert code == 0, err
    assert "ranked 2 queries" in err
    ranked = read_run(out)
    moved = 0
    for q in qids:
        first = [d for d, _ in sorted(bm25[q].items(), key=lambda x: -x[1])]
        mine = [d for d, _ in sorted(ranked[q].items(), key=lambda x: -x[1])]
        assert sorted(mine[:10]) == sorted(first[:10]) and mine[10:] == first[10:]  # only the top 10 moves
        moved += mine[:10] != first[:10]
    assert moved >= 1  # the model re-ordered something

