"""`rerank rank` in-process (``rerank.cli.main``): nothing dropped silently, the set-up recorded with the
progress, subsets of the queries, and messages that blame the right flag or file.

The comparator is the noiseless oracle over a small judged collection written by the tests (fast, no model
export); the MiniLM paths are covered by tests/test_cli_rank.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerank.cli import main

DOCS = {
    "d1": "Paris is the capital and largest city of France.",
    "d2": "Boil the pasta for ten minutes in salted water.",
    "d3": "Income tax returns are due in April in the United States.",
    "d4": "The Eiffel tower stands in Paris.",
}
QUERIES = {"1": "capital of France", "2": "how long to boil pasta", "3": "when are taxes due"}
QRELS = {"1": {"d1": 2, "d4": 1}, "2": {"d2": 2}, "3": {"d3": 2}}


@pytest.fixture
def collection(tmp_path: Path) -> dict[str, Path]:
    """corpus.jsonl, queries.tsv, qrels.txt, run.trec (every document for every query) and input.jsonl."""
    paths = {name: tmp_path / name for name in ("corpus.jsonl", "queries.tsv", "qrels.txt", "run.trec",
                                                "input.jsonl")}
    paths["corpus.jsonl"].write_text("".join(json.dumps({"id": d, "text": t}) + "\n" for d, t in DOCS.items()))
    paths["queries.tsv"].write_text("".join(f"{q}\t{t}\n" for q, t in QUERIES.items()))
    paths["qrels.txt"].write_text("".join(f"{q} 0 {d} {g}\n" for q, j in QRELS.items() for d, g in j.items()))
    paths["run.trec"].write_text("".join(f"{q} Q0 {d} {r} {10 - r} bm25\n" for q in QUERIES
                                         for r, d in enumerate(sorted(DOCS), start=1)))
    paths["input.jsonl"].write_text("".join(jsonl_row(q) for q in QUERIES))
    return paths


def jsonl_row(qid: str) -> str:
    cands = [{"id": d, "text": t} for d, t in DOCS.items()]
    return json.dumps({"qid": qid, "query": QUERIES[qid], "candidates": cands}) + "\n"


def oracle(c: dict[str, Path]) -> list[str]:
    return ["--model", "oracle:noise=0", "--qrels", str(c["qrels.txt"]), "--corpus", str(c["corpus.jsonl"]),
            "--queries", str(c["queries.tsv"])]


def trec_args(c: dict[str, Path], out: Path) -> list[str]:
    return ["rank", "--run", str(c["run.trec"]), *oracle(c), "--depth", "4", "--output", str(out)]


def jsonl_args(c: dict[str, Path], out: Path, source: Path | None = None) -> list[str]:
    return ["rank", "--input", str(source or c["input.jsonl"]), *oracle(c), "--output", str(out)]


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("rerank: error")]


def qids_of(out: Path) -> list[str]:
    return [json.loads(line)["qid"] for line in out.read_text().splitlines()]


# --- item 1: a repeated qid is an error naming both lines ----------------------------------------------
def test_a_repeated_qid_is_an_error_naming_both_lines(collection, tmp_path: Path, capsys) -> None:
    source = tmp_path / "dup.jsonl"
    source.write_text(jsonl_row("1") + jsonl_row("2") + "\n" + jsonl_row("1"))
    out = tmp_path / "out.jsonl"
    assert main(jsonl_args(collection, out, source)) == 1
    (line,) = errors(capsys.readouterr().err)
    assert f"{source}: line 4: qid '1' repeats the query of line 1" in line
    assert not out.exists()  # a file input is checked whole before anything is written (stdin: see test_cli_rank)


def test_skip_bad_reports_a_repeated_qid(collection, tmp_path: Path, capsys) -> None:
    source = tmp_path / "dup.jsonl"
    source.write_text(jsonl_row("1") + jsonl_row("1") + jsonl_row("3"))
    out = tmp_path / "out.jsonl"
    assert main([*jsonl_args(collection, out, source), "--skip-bad"]) == 0
    assert "skipped line 2: qid '1' repeats the query of line 1" in capsys.readouterr().err
    assert qids_of(out) == ["1", "3"]


# --- item 2: the set-up is recorded; a resume under another is refused -----------------------------------
def test_a_resume_with_other_options_is_refused_naming_them(collection, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.jsonl"
    assert main([*jsonl_args(collection, out), "--max-queries", "1"]) == 0
    first = out.read_text()
    capsys.readouterr()
    changed = [*jsonl_args(collection, out), "--sampler", "window", "--budget", "5", "--seed", "3"]
    assert main(changed) == 1
    (line,) = errors(capsys.readouterr().err)
    assert "records 1 queries ranked with another set-up" in line
    assert "--sampler auto (now window)" in line and "--budget unset (now 5)" in line and "--seed 0 (now 3)" in line
    assert "--aggregator" not in line and "--overwrite" in line
    assert out.read_text() == first  # nothing appended under the other set-up

    assert main(jsonl_args(collection, out)) == 0  # the same set-up resumes
    assert "ranked 2 queries (3 done" in capsys.readouterr().err
    assert qids_of(out) == ["1", "2", "3"]

    assert main([*changed, "--overwrite"]) == 0  # starts afresh under the new set-up
    assert qids_of(out) == ["1", "2", "3"]
    setup = json.loads((tmp_path / "out.jsonl.progress").read_text().splitlines()[0])["setup"]
    assert setup["--sampler"] == "window" and setup["--budget"] == 5 and setup["--seed"] == 3


def test_trec_mode_records_depth_and_tag(collection, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.trec"
    assert main([*trec_args(collection, out), "--max-queries", "1"]) == 0
    assert main([*trec_args(collection, out), "--depth", "2", "--tag", "other"]) == 1
    (line,) = errors(capsys.readouterr().err)
    assert "--depth 4 (now 2)" in line and "--tag rerank (now other)" in line


def test_a_progress_file_without_a_set_up_is_refused(collection, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"qid": "1"}\n')
    (tmp_path / "out.jsonl.progress").write_text('{"qid": "1", "offset": 13}\n')  # as an older rerank wrote it
    assert main(jsonl_args(collection, out)) == 1
    assert "records no set-up" in errors(capsys.readouterr().err)[0]


# --- item 16: subsets -----------------------------------------------------------------------------------
def test_qids_and_max_queries_select_a_subset(collection, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.jsonl"
    assert main([*jsonl_args(collection, out), "--qids", "3,1"]) == 0
    assert qids_of(out) == ["1", "3"]
    assert "skipped 1 queries of the input not named by --qids" in capsys.readouterr().err
    out2 = tmp_path / "out2.trec"
    assert main([*trec_args(collection, out2), "--qids", "2", "--qids", "3", "--max-queries", "1"]) == 0
    assert {line.split()[0] for line in out2.read_text().splitlines()} == {"2"}
    assert "stopped after --max-queries 1" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["jsonl", "trec"])
def test_qids_missing_from_the_input_are_an_error(collection, tmp_path: Path, capsys, mode: str) -> None:
    out = tmp_path / "out"
    make = jsonl_args if mode == "jsonl" else trec_args
    assert main([*make(collection, out), "--qids", "1,nope,9"]) == 1
    (line,) = errors(capsys.readouterr().err)
    assert "--qids names 2 queries that are not in the input: 9, nope" in line


def test_a_queries_file_with_a_subset_skips_the_rest_with_a_note(collection, tmp_path: Path, capsys) -> None:
    subset = tmp_path / "subset.tsv"
    subset.write_text("2\thow long to boil pasta\n")
    out = tmp_path / "out.trec"
    args = [a if a != str(collection["queries.tsv"]) else str(subset) for a in trec_args(collection, out)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "note: 2 of the run's 3 queries are not in the queries file and are skipped (1, 3); ranking 1" in err
    assert {line.split()[0] for line in out.read_text().splitlines()} == {"2"}


def test_the_progress_line_counts_queries_done_before_a_resume(collection, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.trec"
    assert main([*trec_args(collection, out), "--max-queries", "2"]) == 0
    assert "queries 2/2" in capsys.readouterr().err
    assert main(trec_args(collection, out)) == 0
    err = capsys.readouterr().err
    assert "queries 3/3" in err and "ranked 1 queries (3 done" in err


# --- item 11: messages blame the right flag or file -----------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--top-n", "-1"], "--top-n must be >= 0 (0 keeps all), got -1"),
        (["--max-queries", "0"], "--max-queries must be >= 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    ],
)
def test_out_of_range_options_blame_the_option(collection, tmp_path, capsys, extra, message) -> None:
    assert main([*jsonl_args(collection, tmp_path / "out.jsonl"), *extra]) == 2
    assert errors(capsys.readouterr().err) == [f"rerank: error: {message}"]
    assert not (tmp_path / "out.jsonl").exists()


def test_top_n_in_trec_mode_is_a_usage_error(collection, tmp_path: Path, capsys) -> None:
    assert main([*trec_args(collection, tmp_path / "o.trec"), "--top-n", "2"]) == 2
    assert "--top-n applies to JSON-lines mode" in errors(capsys.readouterr().err)[0]


@pytest.mark.parametrize("flag", ["--input", "--run", "--corpus", "--queries", "--qrels"])
def test_a_missing_file_names_its_flag(collection, tmp_path: Path, capsys, flag: str) -> None:
    base = trec_args(collection, tmp_path / "o") if flag == "--run" else jsonl_args(collection, tmp_path / "o")
    args = [*base[: base.index(flag) + 1], str(tmp_path / "absent"), *base[base.index(flag) + 2:]]
    assert main(args) == 1
    assert errors(capsys.readouterr().err) == [
        f"rerank: error: cannot read {flag} '{tmp_path / 'absent'}': No such file or directory"
    ]


@pytest.mark.parametrize("name", ["input.jsonl", "queries.tsv", "corpus.jsonl", "qrels.txt"])
def test_a_file_that_is_not_utf8_is_named(collection, tmp_path: Path, capsys, name: str) -> None:
    path = collection[name]
    path.write_bytes(path.read_bytes() + b"\xff\xfe broken\n")
    assert main(jsonl_args(collection, tmp_path / "out.jsonl")) == 1
    (line,) = errors(capsys.readouterr().err)
    assert f"{path}: not UTF-8 text (an invalid byte " in line


def test_an_option_the_record_lacks_counts_as_unset(collection, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert main([*jsonl_args(collection, out), "--max-queries", "1"]) == 0
    progress = tmp_path / "out.jsonl.progress"
    lines = progress.read_text().splitlines()
    record = json.loads(lines[0])
    del record["setup"]["--both-orders"]  # as a rerank before that option existed recorded it (unset)
    progress.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    assert main(jsonl_args(collection, out)) == 0
    assert qids_of(out) == ["1", "2", "3"]


def test_quiet_drops_the_progress_line_but_not_the_summary(collection, tmp_path: Path, capsys) -> None:
    assert main([*trec_args(collection, tmp_path / "out.trec"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "queries 3/3" not in err and "ranked 3 queries" in err


@pytest.mark.parametrize("budget", ["0", "-3", "0%", "150%", "1.5", "nan", "lots"])
def test_a_budget_is_checked_when_parsed(collection, tmp_path: Path, capsys, budget: str) -> None:
    assert main([*jsonl_args(collection, tmp_path / "out.jsonl"), "--budget", budget]) == 2
    (line,) = errors(capsys.readouterr().err)
    assert line.startswith(f"rerank: error: --budget: invalid budget '{budget}': ")
    assert not (tmp_path / "out.jsonl").exists()


# --- a resume checks the output against its .progress (issue 21 item 11) ---------------------------------
def _progress_records(out: Path) -> list[dict]:
    lines = out.with_name(out.name + ".progress").read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]


@pytest.mark.parametrize("cut", ["inside the second block", "before the first block ends", "no output at all"])
def test_a_resume_of_a_shortened_output_never_pads_and_reranks_what_is_lost(collection, tmp_path: Path, capsys,
                                                                            cut: str) -> None:
    """A copy cut short (a disk that filled): the resume keeps the intact blocks, ranks the others again and
    says so; never NUL bytes, never a count of queries the file lacks."""
    out = tmp_path / "out.jsonl"
    assert main(jsonl_args(collection, out)) == 0
    full = out.read_bytes()
    records = _progress_records(out)
    assert [r["qid"] for r in records] == ["1", "2", "3"] and records[-1]["offset"] == len(full)
    assert all(len(r["sha256"]) == 64 and r["length"] > 0 for r in records)
    size = {"inside the second block": records[0]["offset"] + 10, "before the first block ends": 5,
            "no output at all": 0}[cut]
    out.write_bytes(full[:size])
    capsys.readouterr()
    assert main(jsonl_args(collection, out)) == 0
    err = capsys.readouterr().err
    assert b"\0" not in out.read_bytes()
    assert out.read_bytes() == full
    kept = 1 if cut == "inside the second block" else 0
    assert f"{3 - kept} of the 3 queries recorded in out.jsonl.progress are missing or damaged" in err
    assert f"ranked {3 - kept} queries (3 done" in err
    assert [r["qid"] for r in _progress_records(out)] == ["1", "2", "3"]


def test_a_resume_reranks_from_a_block_whose_bytes_changed(collection, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.jsonl"
    assert main(jsonl_args(collection, out)) == 0
    full = out.read_bytes()
    second = _progress_records(out)[0]["offset"] + 2
    out.write_bytes(full[:second] + b"X" + full[second + 1:])  # same length, one byte of query 2 changed
    capsys.readouterr()
    assert main(jsonl_args(collection, out)) == 0
    err = capsys.readouterr().err
    assert "2 of the 3 queries recorded" in err and "ranked 2 queries (3 done" in err
    assert out.read_bytes() == full


def test_a_progress_line_of_an_older_rerank_counts_as_unchecked(collection, tmp_path: Path, capsys) -> None:
    """A record without the block's length and hash cannot be checked: that query is ranked again."""
    out = tmp_path / "out.jsonl"
    assert main([*jsonl_args(collection, out), "--max-queries", "1"]) == 0
    progress = out.with_name(out.name + ".progress")
    setup_line, record = progress.read_text().splitlines()
    progress.write_text(setup_line + "\n" + json.dumps({"qid": "1", "offset": json.loads(record)["offset"]}) + "\n")
    capsys.readouterr()
    assert main(jsonl_args(collection, out)) == 0
    assert "ranked 3 queries (3 done" in capsys.readouterr().err
    assert qids_of(out) == ["1", "2", "3"]


# --- bad input leaves no output behind (issue 21 item 12) --------------------------------------------------
@pytest.mark.parametrize("damage", ["non-UTF-8 line", "truncated run", "duplicate docid", "docid not in corpus"])
def test_bad_input_creates_no_output_and_no_progress(collection, tmp_path: Path, capsys, damage: str) -> None:
    run = collection["run.trec"]
    if damage == "non-UTF-8 line":
        source = collection["input.jsonl"]
        source.write_bytes(source.read_bytes() + b'{"qid": "4", "query": "caf\xe9"}\n')
        args = jsonl_args(collection, tmp_path / "out.jsonl")
    else:
        text = run.read_text()
        extra = {"truncated run": "1 Q0 d9", "duplicate docid": text.splitlines()[-1] + "\n",
                 "docid not in corpus": "3 Q0 d9 1 99 bm25\n"}[damage]  # query 3, the last one ranked
        run.write_text(text + extra)
        args = trec_args(collection, tmp_path / "out.jsonl")
    assert main(args) == 1
    (line,) = errors(capsys.readouterr().err)
    assert {"non-UTF-8 line": "not UTF-8", "truncated run": "expected 6 fields",
            "duplicate docid": "duplicate document", "docid not in corpus": "'d9' of the run is not in the corpus",
            }[damage] in line
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == []


def test_bad_input_keeps_an_earlier_run_untouched(collection, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.jsonl"
    assert main([*jsonl_args(collection, out), "--max-queries", "1"]) == 0
    before = out.read_bytes(), out.with_name(out.name + ".progress").read_bytes()
    source = collection["input.jsonl"]
    source.write_bytes(source.read_bytes() + b"\xff\n")
    assert main(jsonl_args(collection, out)) == 1
    assert (out.read_bytes(), out.with_name(out.name + ".progress").read_bytes()) == before
