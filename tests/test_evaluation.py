"""Tests for rerank.evaluation: TREC file I/O and metrics against pytrec_eval and the data README."""

from __future__ import annotations

import io
import math
import random
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank.evaluation import (
    evaluate,
    kendall_tau,
    ndcg_at_k,
    rank_docs,
    read_corpus,
    read_qrels,
    read_queries,
    read_run,
    reciprocal_rank,
    run_to_rankings,
    write_run,
)

pytrec_eval = pytest.importorskip("pytrec_eval")

BM25 = {
    "trec-dl-2019-passage": ("run.bm25.top100.trec", 43, 0.5058),
    "cranfield": ("run.bm25s_k1-0.9_b-0.4.top100.trec", 225, 0.3433),
    "cisi": ("run.bm25s_k1-0.9_b-0.4.top100.trec", 76, 0.3725),
}
PAIRS = [("ndcg@10", "ndcg_cut_10"), ("map", "map"), ("mrr", "recip_rank"), ("recall@100", "recall_100")]


def _load(data_dir: Path, name: str) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    folder = data_dir / name
    if not folder.is_dir():
        pytest.skip(f"collection {folder} not found")
    return read_qrels(folder / "qrels.txt"), read_run(folder / BM25[name][0])


def _trec_eval(qrels, run, rel_level: int) -> dict[str, dict[str, float]]:
    measures = {ref for _, ref in PAIRS}
    return pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=rel_level).evaluate(run)


# --- real collections --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BM25))
def test_bm25_ndcg10_matches_readme(data_dir: Path, name: str) -> None:
    qrels, run = _load(data_dir, name)
    means, per_query = evaluate(run, qrels, measures=("ndcg@10",))
    _, n_judged, expected = BM25[name]
    assert len(per_query) == n_judged  # CISI: judged queries only (76 of 112)
    assert round(means["ndcg@10"], 4) == expected


@pytest.mark.parametrize("name", list(BM25))
@pytest.mark.parametrize("rel_level", [1, 2])
def test_our_per_ranking_metrics_match_pytrec_eval_per_query(data_dir: Path, name: str, rel_level: int) -> None:
    """nDCG@10 and RR, which we compute ourselves one ranking at a time (the budget benchmark's loop), agree
    with trec_eval's code on every query; ``evaluate`` (through the library) gives the same means."""
    qrels, run = _load(data_dir, name)
    ref = _trec_eval(qrels, run, rel_level)
    assert set(ref) == {q for q in run if q in qrels}
    for qid, row in ref.items():
        ranking = rank_docs(run[qid])
        assert ndcg_at_k(ranking, qrels[qid], 10) == pytest.approx(row["ndcg_cut_10"], abs=1e-9), qid
        assert reciprocal_rank(ranking, qrels[qid], rel_level) == pytest.approx(row["recip_rank"], abs=1e-9), qid
    means, ours = evaluate(run, qrels, rel_level=rel_level)
    assert set(ours) == set(ref)
    for m, r in PAIRS:
        assert means[m] == pytest.approx(np.mean([row[r] for row in ref.values()]), abs=1e-12)
        assert all(ours[q][m] == pytest.approx(row[r], abs=1e-12) for q, row in ref.items())


def test_dl19_binary_measures_level2(data_dir: Path) -> None:
    qrels, run = _load(data_dir, "trec-dl-2019-passage")
    means, _ = evaluate(run, qrels, rel_level=2)
    assert round(means["ndcg@10"], 4) == 0.5058
    assert round(means["map"], 4) == 0.2476
    assert round(means["mrr"], 4) == 0.7036
    assert round(means["recall@100"], 4) == 0.4910


def test_rankings_input_equals_run_input(data_dir: Path) -> None:
    qrels, run = _load(data_dir, "cranfield")  # has tied scores
    assert evaluate(run_to_rankings(run), qrels) == evaluate(run, qrels)


def test_read_queries_and_corpus(data_dir: Path) -> None:
    folder = data_dir / "trec-dl-2019-passage"
    queries = read_queries(folder / "queries.tsv")
    corpus = read_corpus(folder / "corpus.jsonl")
    assert len(queries) == 43 and len(corpus) == 4297
    assert queries["264014"] == "how long is life cycle of flea"
    cran = read_corpus(data_dir / "cranfield" / "corpus.jsonl")
    assert len(cran) == 1400 and cran["471"] == ""
    # Cranfield texts already begin with their title: it is not repeated.
    assert cran["1"].startswith("experimental investigation of the aerodynamics of a wing in a slipstream .")
    assert cran["1"].count("experimental investigation of the aerodynamics") == 1


# --- tie order ---------------------------------------------------------------------------------------------


def test_tie_order_is_docid_descending_like_trec_eval() -> None:
    run = {"q": {"a": 1.0, "aa": 1.0, "B": 1.0, "10": 1.0, "9": 1.0, "top": 2.0}}
    assert run_to_rankings(run)["q"] == ["top", "aa", "a", "B", "9", "10"]
    for target in run["q"]:
        qrels = {"q": {target: 1}}
        ref = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q"]["recip_rank"]
        assert evaluate(run, qrels, measures=("mrr",))[1]["q"]["mrr"] == ref


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.text("abcXY019", min_size=1, max_size=3), st.sampled_from([0.0, 0.5, 1.0]), min_size=1, max_size=12
    ),
    st.data(),
)
def test_random_ties_match_pytrec_eval(scores: dict[str, float], data: st.DataObject) -> None:
    docs = sorted(scores)
    grades = data.draw(st.lists(st.integers(0, 3), min_size=len(docs), max_size=len(docs)))
    qrels = {"q": dict(zip(docs, grades, strict=True))}
    run = {"q": scores}
    ref = _trec_eval(qrels, run, 1)["q"]
    ours = evaluate(run, qrels)[1]["q"]
    for m, r in PAIRS:
        assert ours[m] == pytest.approx(ref[r], abs=1e-12)


# --- metric hand cases -------------------------------------------------------------------------------------


def test_metric_hand_cases() -> None:
    qrel = {"a": 3, "b": 0, "c": 1, "d": 2, "x": -1}
    ranking = ["b", "a", "e", "c"]
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    idcg = 3 + 2 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranking, qrel, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(ranking, qrel, 1) == 0.0
    assert reciprocal_rank(ranking, qrel) == 0.5
    assert reciprocal_rank(ranking, qrel, k=1) == 0.0
    assert reciprocal_rank(ranking, qrel, rel_level=4) == 0.0
    with pytest.raises(ValueError, match="duplicate"):
        ndcg_at_k(["a", "a"], qrel, 10)
    # the measures trec_eval computes for us, by hand, through evaluate (rel_level reaches the library)
    one = {"q": ranking}
    assert evaluate(one, {"q": qrel}, ("map",))[0]["map"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert evaluate(one, {"q": qrel}, ("map",), rel_level=2)[0]["map"] == pytest.approx((1 / 2) / 2)
    assert evaluate(one, {"q": qrel}, ("recall@2",))[0]["recall@2"] == pytest.approx(1 / 3)
    assert evaluate(one, {"q": {"z": 0}}, ("recall@2",))[0]["recall@2"] == 0.0
    assert evaluate(one, {"q": qrel}, ("mrr@1", "mrr", "p@2"))[0] == {"mrr@1": 0.0, "mrr": 0.5, "p@2": 0.5}
    with pytest.raises(ValueError, match="duplicate"):
        evaluate({"q": ["a", "a"]}, {"q": qrel})


def test_evaluate_query_coverage() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": {"a": 1.0, "b": 0.5}, "q3": {"a": 1.0}}
    means, per_query = evaluate(run, qrels, measures=("mrr", "p@1"))
    assert set(per_query) == {"q1"} and means == {"mrr": 1.0, "p@1": 1.0}
    means, per_query = evaluate(run, qrels, measures=("mrr",), all_qrels=True)
    assert per_query["q2"] == {"mrr": 0.0} and means["mrr"] == 0.5
    with pytest.raises(ValueError, match="unknown measure"):
        evaluate(run, qrels, measures=("bpref",))


# --- Kendall tau -------------------------------------------------------------------------------------------


def test_kendall_tau_basic() -> None:
    items = [f"d{i}" for i in range(20)]
    assert kendall_tau(items, items) == 1.0
    assert kendall_tau(items, items[::-1]) == -1.0
    # a b c d vs b a d c: 2 discordant pairs of 6 -> (4 - 2) / 6
    assert kendall_tau(list("abcd"), list("badc")) == pytest.approx(1 / 3)
    assert math.isnan(kendall_tau(["a"], ["a"]))
    with pytest.raises(ValueError, match="same items"):
        kendall_tau(["a", "b"], ["a", "c"])
    with pytest.raises(ValueError, match="same items"):
        kendall_tau(["a", "b"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="duplicate"):
        kendall_tau(["a", "a"], ["a", "b"])


@pytest.mark.parametrize("n", [2, 3, 17, 250, 1000])
def test_kendall_tau_matches_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    items = [f"doc{i}" for i in range(n)]
    for _ in range(3):
        a = [items[i] for i in rng.permutation(n)]
        b = [items[i] for i in rng.permutation(n)]
        pos = {d: i for i, d in enumerate(b)}
        expected = scipy.stats.kendalltau(np.arange(n), [pos[d] for d in a]).statistic
        assert kendall_tau(a, b) == pytest.approx(expected, abs=1e-12)


# --- file formats ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "lineno"),
    [
        ("1 0 d1 1\n1 0 d2\n", 2),
        ("1 0 d1 1\n\n1 0 d2 high\n", 3),
        ("1 0 d1 1\n1 0 d1 2\n", 2),
    ],
)
def test_malformed_qrels(tmp_path: Path, content: str, lineno: int) -> None:
    path = tmp_path / "qrels.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=rf"qrels\.txt:{lineno}:"):
        read_qrels(path)


@pytest.mark.parametrize(
    ("content", "lineno"),
    [
        ("1 Q0 d1 1 2.0 t\n1 Q0 d2 2 1.0\n", 2),
        ("1 Q0 d1 1 2.0 t\n1 Q0 d2 2 abc t\n", 2),
        ("1 Q0 d1 one 2.0 t\n", 1),
        ("1 Q0 d1 1 2.0 t\n2 Q0 d1 1 2.0 t\n1 Q0 d1 2 1.0 t\n", 3),
    ],
)
def test_malformed_run(tmp_path: Path, content: str, lineno: int) -> None:
    path = tmp_path / "run.trec"
    path.write_text(content)
    with pytest.raises(ValueError, match=rf"run\.trec:{lineno}:"):
        read_run(str(path))


def test_malformed_queries_and_corpus(tmp_path: Path) -> None:
    queries = tmp_path / "q.tsv"
    queries.write_text("1\tfine\nno tab here\n")
    with pytest.raises(ValueError, match=r"q\.tsv:2:"):
        read_queries(queries)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "1", "text": "x"}\n{"id": "2"\n')
    with pytest.raises(ValueError, match=r"c\.jsonl:2:"):
        read_corpus(corpus)


def test_corpus_title(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(
        '{"id": "1", "title": "A Title", "text": "body"}\n'
        '{"id": "2", "title": "Body starts", "text": "Body starts here"}\n'
        '{"id": 3, "text": "plain"}\n'
    )
    assert read_corpus(corpus) == {"1": "A Title body", "2": "Body starts here", "3": "plain"}
    assert read_corpus(corpus, title_sep="\n")["1"] == "A Title\nbody"


def test_write_read_run_round_trip(tmp_path: Path) -> None:
    rng = random.Random(0)
    run = {
        f"q{q}": {f"d{d}": rng.choice([rng.random(), 0.5, -1e-300, 1e20]) for d in range(30)}
        for q in range(5)
    }
    path = tmp_path / "out.trec"
    write_run(run, path, tag="test")
    assert read_run(path) == run
    lines = path.read_text().splitlines()
    q0 = [line.split() for line in lines if line.startswith("q0 ")]
    assert [int(p[3]) for p in q0] == list(range(1, 31))
    assert [p[2] for p in q0] == rank_docs(run["q0"])
    assert all(p[5] == "test" for p in q0)
    buf = io.StringIO()
    write_run(run, buf)
    assert buf.getvalue() == path.read_text().replace(" test\n", " rerank\n")
    with pytest.raises(ValueError):
        write_run(run, buf, tag="two words")
