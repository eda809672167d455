"""Cascades (``rerank_cascade``, ``rerank rank --stage``, gRPC ``options.stages``): a pointwise model on the
top k1, a pairwise model on the top k2 of that, the tail in its earlier order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rerank.models.testing import WORDS, build_tiny_bert_classifier
from rerank.pipeline import Candidate, RankOptions, RequestError, Stage, rerank_cascade
from rerank.specs import parse_stage

pytest.importorskip("torch")

QUERY = "what do plants need"
CANDS = [Candidate(f"d{i}", " ".join(WORDS[(3 * i + j) % len(WORDS)] for j in range(6 + i))) for i in range(8)]


class GradedOracle:
    """Pairwise answers from known grades (the qrels oracle's rule without noise)."""

    def __init__(self, grades: dict[str, float]) -> None:
        self.grades = grades
        self.calls = 0

    def compare_batch(self, items):
        self.calls += len(items)
        return np.array([1 / (1 + np.exp(-2 * (self.grades[a] - self.grades[b]))) for _, a, b in items])


@pytest.fixture(scope="module")
def mono(tmp_path_factory):
    from rerank.models import load_model

    folder = build_tiny_bert_classifier(tmp_path_factory.mktemp("mono") / "ce", num_labels=1)
    return load_model(folder, backend="torch", kind="mono-cross-encoder")


def test_mono_then_pairwise(mono) -> None:
    grades = {c.text: float(i % 3) for i, c in enumerate(CANDS)}
    oracle = GradedOracle(grades)
    out = rerank_cascade(QUERY, CANDS, [Stage(mono, 6, "mono"), Stage(oracle, 3, "oracle")],
                         RankOptions(sampler="all", calibration="symmetric"))
    ids = [r.id for r in out.results]
    scores = mono.score(QUERY, [c.text for c in CANDS[:6]])
    by_mono = [CANDS[j].id for j in np.argsort(-scores, kind="stable")]
    top3 = sorted(by_mono[:3], key=lambda d: -grades[CANDS[int(d[1:])].text])
    assert set(ids[:3]) == set(by_mono[:3]) and [grades[CANDS[int(d[1:])].text] for d in ids[:3]] == [
        grades[CANDS[int(d[1:])].text] for d in top3
    ]
    assert ids[3:6] == by_mono[3:6] and ids[6:] == ["d6", "d7"]  # the tail keeps the earlier order
    assert [s.comparisons for s in out.stages] == [6, 6] and out.usage.comparisons == 12 == 6 + oracle.calls
    assert [s.pointwise for s in out.stages] == [True, False] and [s.depth for s in out.stages] == [6, 3]
    assert [r.score for r in out.results] == [8.0 - i for i in range(8)]


def test_budget_applies_to_the_last_stage_only(mono) -> None:
    oracle = GradedOracle({c.text: float(i) for i, c in enumerate(CANDS)})
    out = rerank_cascade(QUERY, CANDS, [Stage(mono, 8, "mono"), Stage(oracle, 6, "oracle")],
                         RankOptions(sampler="random", budget=10, calibration="none"))
    assert out.stages[0].comparisons == 8 and out.stages[1].comparisons == 10 == oracle.calls
    assert out.usage.budget == 10


def test_pointwise_scores_are_the_pairwise_model(mono) -> None:
    texts = [c.text for c in CANDS[:4]]
    s = mono.score(QUERY, texts)
    p = mono.compare(QUERY, [(texts[0], texts[1]), (texts[2], texts[3])])
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(s[[0, 2]] - s[[1, 3]]))), atol=1e-9)


def test_bad_stages() -> None:
    oracle = GradedOracle({c.text: 0.0 for c in CANDS})
    with pytest.raises(RequestError) as err:
        rerank_cascade(QUERY, CANDS, [Stage(oracle, 0)])
    assert err.value.field == "stages[0].depth"  # the Python face names the request object's fields
    with pytest.raises(RequestError) as err:
        rerank_cascade(QUERY, CANDS, [])
    assert err.value.field == "stages"
    assert parse_stage("oracle:noise=3,bias=1:20") == ("oracle:noise=3,bias=1", 20)
    for bad in ("minilm", "minilm:x", ":5"):  # a depth < 1 is the request's rule (stages[i].depth)
        with pytest.raises(RequestError):
            parse_stage(bad)


def test_cli_stage_errors_are_one_line(tmp_path, cli) -> None:
    jobs = tmp_path / "in.jsonl"
    jobs.write_text(json.dumps({"qid": "1", "query": QUERY, "candidates": [
        {"id": c.id, "text": c.text} for c in CANDS]}) + "\n")
    base = ["rank", "--input", str(jobs), "--output", str(tmp_path / "o")]
    for extra, message in (
        (["--stage", "minilm"], "expected MODEL:DEPTH"),
        (["--stage", "minilm:100", "--model", "minilm"], "either --stage"),
    ):
        code, _, err = cli([*base, *extra])
        assert code != 0 and message in err and len(err.strip().splitlines()) == 1


def test_usage_reports_truncation_and_stage_times(tmp_path) -> None:
    """Per-request model stats reach ``usage``: comparisons whose texts were cut, tokenize and run ms."""
    from rerank.models import load_model
    from rerank.pipeline import rerank

    folder = build_tiny_bert_classifier(tmp_path / "ce", num_labels=1)
    model = load_model(folder, backend="torch", kind="mono-cross-encoder", max_passage_tokens=7)
    cands = CANDS[:4]  # 6, 7, 8 and 9 words: the first two fit in 7 tokens, the others are cut
    out = rerank(QUERY, cands, [model], RankOptions(sampler="all", calibration="none"))
    cut = {c.text for c in cands if model.prepare([(QUERY, c.text, c.text)]).truncated_items}
    texts = [c.text for c in cands]
    expected = sum((a in cut) or (b in cut) for a in texts for b in texts if a != b)
    assert 0 < expected < 12 and out.usage.truncated_items == expected
    assert out.usage.tokenize_ms > 0 and out.usage.run_ms > 0 and out.usage.queue_ms == 0


class PointwiseFake:
    """A pointwise fake served model: score = the first integer of the text; p = sigmoid of the gap."""

    kind = "fake-pointwise"
    pointwise = True

    def __init__(self) -> None:
        from rerank.server.testing import FakeModel

        self.fake = FakeModel()
        self.options = self.fake.options
        self.scored = 0

    def compare_batch(self, items):
        return self.fake.compare_batch(items)

    def score(self, query, passages):
        self.scored += len(passages)
        return np.array([self.fake.relevance(p) for p in passages])


def test_a_pointwise_stage_goes_through_the_scheduler() -> None:
    """Issue 21 item 10: the pointwise stage's model call is a scheduler job (counted in its calls and the
    request's queue time, held to ``max_queue_items``), not a call on the request's thread."""
    from rerank.client import RerankClient, RerankError
    from rerank.server.app import RerankServer
    from rerank.server.config import ServerConfig

    model = PointwiseFake()
    config = ServerConfig(port=0, max_queue_items=5, warmup=False)
    docs = [(f"d{i}", f"passage {n}") for i, n in enumerate([3, 9, 1, 7])]
    with RerankServer(config, models={"pw": model}) as srv, RerankClient(srv.address, timeout=30) as client:
        scheduler = srv.service.models["pw"].scheduler
        calls, items = scheduler.calls, scheduler.items
        reply = client.rerank("q", docs, stages=["pw:4", "pw:2"])
        assert reply.ids[:2] == ["d1", "d3"] and model.scored == 4
        assert [(s.model, s.depth, s.comparisons, s.pointwise) for s in reply.usage.stages] == [
            ("pw", 4, 4, True), ("pw", 2, 2, False)]
        assert scheduler.items - items == 4 + 2 and scheduler.calls - calls >= 2
        with pytest.raises(RerankError) as err:  # 6 scores in one stage: over the queue's 5 items
            client.rerank("q", [*docs, ("d4", "passage 2"), ("d5", "passage 4")], stages=["pw:6", "pw:2"])
        assert "max_queue_items" in err.value.details and model.scored == 4


class Recorded:
    """A comparator that keeps every p it answered, by (passage a, passage b)."""

    def __init__(self, model) -> None:
        self.model = model
        self.p: dict[tuple[str, str], float] = {}

    def compare_batch(self, items):
        result = self.model.compare_batch(items)
        self.p.update({(a, b): float(p) for (_q, a, b), p in zip(items, result.p, strict=True)})
        return result


@pytest.mark.timeout(900)  # 100 + 380 sequences of real passages on torch: slow on a busy machine
def test_duobert_sum_cascade_gives_the_reference_order(data_dir, tmp_path) -> None:
    """Cross-encoder top 100 -> duoBERT Sum top 20 (``aggregator="sum"`` alone, calibration none): the top 20
    is duoBERT's own Sum order (Nogueira et al. 2019: s_i = sum over j != i of p(i, j), i in the first slot),
    computed here from the model's answers to all 380 ordered pairs; the default first-stage prior stays off
    for a named reference aggregation."""
    from rerank.models import load_model
    from rerank.models.testing import build_wordpiece_bert

    folder = data_dir / "trec-dl-2019-passage"
    qid, query = (folder / "queries.tsv").read_text().splitlines()[0].split("\t")
    corpus = {d["id"]: d["text"] for d in map(json.loads, (folder / "corpus.jsonl").read_text().splitlines())}
    run = [line.split() for line in (folder / "run.bm25.top100.trec").read_text().splitlines()]
    cands = [Candidate(r[2], corpus[r[2]]) for r in run if r[0] == qid][:100]
    ce = load_model(build_tiny_bert_classifier(tmp_path / "ce", num_labels=1), backend="torch",
                    kind="mono-cross-encoder")
    duo = Recorded(load_model(build_wordpiece_bert(tmp_path / "duo", num_labels=2, type_vocab_size=3),
                              backend="torch", kind="duo-cross-encoder"))
    out = rerank_cascade(query, cands, [Stage(ce, 100, "ce"), Stage(duo, 20, "duo")],
                         RankOptions(aggregator="sum", calibration="none"))
    scores = ce.score(query, [c.text for c in cands])
    top20 = [cands[j] for j in np.argsort(-scores, kind="stable")[:20]]
    assert len(duo.p) == 380 and {(a.text, b.text) for a in top20 for b in top20 if a is not b} == set(duo.p)
    total = {a.id: sum(duo.p[(a.text, b.text)] for b in top20 if b is not a) for a in top20}
    reference = sorted(total, key=lambda d: -total[d])
    assert [r.id for r in out.results[:20]] == reference
