"""Scores a threshold can use (rerank/scores.py): monotone along the ranking, equal for equal texts, on the
model's absolute scale (minilm: cosine), the same on every face; ``raw`` keeps the latent scores."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from rerank.pipeline import run
from rerank.request import Candidate, RankOptions, RerankRequest
from rerank.scores import MINILM_THRESHOLD, beat_typical, threshold_scores

FINANCE = [
    "The central bank raised interest rates by a quarter point to fight inflation.",
    "Stock markets fell sharply after the quarterly earnings reports disappointed investors.",
    "Bond yields climbed as traders priced in further monetary tightening.",
]


def _candidates(texts: list[str]) -> tuple[Candidate, ...]:
    return tuple(Candidate(f"d{i}", t) for i, t in enumerate(texts))


def test_threshold_scores_are_monotone_along_the_order_and_equal_per_text() -> None:
    order = [2, 0, 1, 3]
    anchor = np.array([0.5, 0.2, 0.4, 0.9])  # by request position; 3 is last in the order but has the highest
    group = np.array([0, 1, 0, 2])  # candidates 0 and 2 are the same text
    out = threshold_scores(order, anchor, group)
    along = out[order]
    assert np.all(np.diff(along) <= 1e-12) and out[0] == out[2]
    np.testing.assert_allclose(threshold_scores([0, 1, 2], np.array([3.0, 2.0, 1.0]), np.arange(3)), [3, 2, 1])


def test_beat_typical_is_the_bradley_terry_probability() -> None:
    np.testing.assert_allclose(beat_typical(np.zeros(4)), 0.5)
    s = np.array([2.0, 0.0])
    np.testing.assert_allclose(beat_typical(s), [1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2))])
    assert beat_typical(np.array([1.0, 0.0, -1.0])).sum() == pytest.approx(1.5)  # n/2: every pair has a winner


def test_minilm_scores_are_its_cosines_and_equal_texts_score_equal(minilm) -> None:
    texts = [FINANCE[0], FINANCE[1], FINANCE[0], FINANCE[2], FINANCE[0]]
    out = run(RerankRequest("why do interest rates rise", _candidates(texts), absolute_scores=True),
              {"minilm": minilm})
    assert out.absolute is not None and out.scores is not None
    same = [0, 2, 4]
    assert len({out.absolute[i] for i in same}) == 1 and len({out.scores[i] for i in same}) == 1  # were 1/0.5/0
    positions = [out.order.index(i) for i in same]
    assert positions == list(range(positions[0], positions[0] + 3))  # together, in request order
    cosine = minilm.score("why do interest rates rise", texts)
    np.testing.assert_allclose(out.absolute, cosine, atol=1e-9)  # minilm's own ranking: the cosine itself
    assert np.all(np.diff(out.absolute[out.order]) <= 1e-12)


def test_a_documented_threshold_separates_a_relevant_and_an_irrelevant_query(minilm) -> None:
    """The issue's case: finance texts for a plants query were 1.0 / 0.44 / 0.0 under min-max scaling."""
    tops = {}
    for query in ("how do central banks fight inflation", "how do plants absorb water through their roots"):
        out = run(RerankRequest(query, _candidates(FINANCE), absolute_scores=True), {"minilm": minilm})
        tops[query] = float(out.absolute[out.order[0]])
    relevant, irrelevant = tops.values()
    assert relevant > MINILM_THRESHOLD > irrelevant, tops


def test_the_http_face_returns_them_and_raw_keeps_the_latent_scores(minilm) -> None:
    from rerank.server.app import RerankServer
    from rerank.server.config import ServerConfig

    query = "how do plants absorb water through their roots"
    with RerankServer(ServerConfig(port=0, http_port=0, warmup=False), models={"minilm": minilm}) as srv:
        base = f"http://127.0.0.1:{srv.http_port}"
        cohere = httpx.post(f"{base}/v2/rerank", json={"query": query, "documents": FINANCE}, timeout=60).json()
        raw = httpx.post(f"{base}/rerank", json={"query": query, "texts": FINANCE, "raw_scores": True},
                         timeout=60).json()
    top = cohere["results"][0]["relevance_score"]
    assert top < MINILM_THRESHOLD and top != 1.0  # no longer min-max: the best of three irrelevant texts
    latent = run(RerankRequest(query, _candidates(FINANCE), options=RankOptions()), {"minilm": minilm}).scores
    assert [r["score"] for r in raw] == pytest.approx(sorted(latent, reverse=True))


def test_the_jina_shape_has_model_and_token_usage_and_errors_a_detail(minilm) -> None:
    """Issue 23 item 3: Haystack's JinaRanker reads `model`, LiteLLM's jina_ai/ `usage.total_tokens`."""
    from rerank.server.app import RerankServer
    from rerank.server.config import ServerConfig

    with RerankServer(ServerConfig(port=0, http_port=0, warmup=False), models={"minilm": minilm}) as srv:
        base = f"http://127.0.0.1:{srv.http_port}"
        documents = [f"{t} (jina)" for t in FINANCE]  # texts no other test ran: cached sequences run no tokens
        body = {"model": "minilm", "query": "jina shape: why do rates rise", "documents": documents, "top_n": 2}
        reply = httpx.post(f"{base}/v1/rerank", json=body, timeout=60).json()
        error = httpx.post(f"{base}/v1/rerank", json={**body, "query": ""}, timeout=60).json()
    assert reply["model"] == "minilm" and reply["usage"]["total_tokens"] > 0
    assert reply["meta"]["usage"]["tokens"] == reply["usage"]["total_tokens"]
    assert error["detail"] == error["message"] == "query: must not be empty"


def test_max_tokens_per_doc_cuts_the_documents_of_that_request_only(minilm, minilm_store) -> None:
    """Issue 23 item 6: as Cohere does, max_tokens_per_doc below the passage budget (256) ranks each document's
    first N tokens; without it the same request ranks the whole texts."""
    from tokenizers import Tokenizer

    from rerank.server.app import RerankServer
    from rerank.server.config import ServerConfig

    tokenizer = Tokenizer.from_file(str(minilm_store.path("minilm") / "tokenizer.json"))
    docs = ["Plants absorb water through their roots. " + "Central banks raise interest rates. " * 5,
            "Interest rates and inflation. " + "Roots take up water and minerals from the soil. " * 5]
    query = "how do plants absorb water through roots"
    prefixes = []
    for doc in docs:  # the first 6 tokens of each, by offsets, as an independent reading of the cut
        enc = tokenizer.encode(doc, add_special_tokens=False)
        prefixes.append(doc[: enc.offsets[5][1]])
    with RerankServer(ServerConfig(port=0, http_port=0, warmup=False), models={"minilm": minilm}) as srv:
        url = f"http://127.0.0.1:{srv.http_port}/v2/rerank"
        cut = httpx.post(url, json={"query": query, "documents": docs, "max_tokens_per_doc": 6}, timeout=60).json()
        manual = httpx.post(url, json={"query": query, "documents": prefixes}, timeout=60).json()
        whole = httpx.post(url, json={"query": query, "documents": docs}, timeout=60).json()
    assert [r["index"] for r in cut["results"]] == [r["index"] for r in manual["results"]] == [0, 1]
    assert [r["relevance_score"] for r in cut["results"]] == pytest.approx(
        [r["relevance_score"] for r in manual["results"]])
    assert cut["meta"]["warnings"] == ["documents cut to 6 tokens of model 'minilm' for this request"]
    whole_scores = {r["index"]: r["relevance_score"] for r in whole["results"]}  # without it: the whole texts
    assert all(abs(whole_scores[r["index"]] - r["relevance_score"]) > 1e-3 for r in cut["results"])
