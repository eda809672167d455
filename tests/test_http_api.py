"""The HTTP face with real clients against a real server on 127.0.0.1 serving the real MiniLM: the official
``cohere`` SDK (v2 and v1 clients), LangChain's ``CohereRerank``, ``httpx`` for the TEI shape; the same
ranking as the gRPC face for the same request; retrieve-and-rerank over a Cranfield index; the OpenAPI
schema; and one scheduler for both faces (HTTP and gRPC comparisons merged into one model call)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import REPO as ROOT
from conftest import _wait_for

from rerank.client import RerankClient
from rerank.evaluation.trec import rank_docs, read_corpus, read_queries, read_run
from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig
from rerank.server.testing import FakeModel

cohere = pytest.importorskip("cohere")
TOKEN = "http-test-token"


@pytest.fixture(scope="module")
def dl19(data_dir) -> tuple[str, list[tuple[str, str]]]:
    """A DL19 query and its BM25 top 20 passages (id, text)."""
    folder = data_dir / "trec-dl-2019-passage"
    queries, corpus = read_queries(folder / "queries.tsv"), read_corpus(folder / "corpus.jsonl")
    run = read_run(folder / "run.bm25.top100.trec")
    qid = sorted(run)[0]
    docs = [d for d in rank_docs(run[qid]) if d in corpus][:20]
    return queries[qid], [(d, corpus[d]) for d in docs]


@pytest.fixture(scope="module")
def cran_small(tmp_path_factory, data_dir, minilm) -> Path:
    """The first 300 Cranfield documents in a flat index."""
    from rerank.retrieval import build_index

    folder = tmp_path_factory.mktemp("cran-http")
    lines = (data_dir / "cranfield" / "corpus.jsonl").read_text().splitlines(keepends=True)
    (folder / "docs.jsonl").write_text("".join(lines[:300]))
    build_index(folder / "docs.jsonl", folder / "idx", minilm, skip_empty=True)
    return folder / "idx"


@pytest.fixture(scope="module")
def server(minilm_store, cran_small):
    """Both faces, a bearer token and an index; fp32 MiniLM (batch-independent answers)."""
    from rerank.models import load_model

    model = load_model("minilm", store=minilm_store, variant="fp32")
    config = ServerConfig(
        port=0, http_port=0, auth_token=TOKEN, index=str(cran_small), warmup=False, max_wait_ms=2.0, grace_s=2.0
    )
    srv = RerankServer(config, models={"minilm": model, "minilm-b": model})
    srv.start()
    yield srv
    srv.stop(grace=1.0)


@pytest.fixture(scope="module")
def base(server) -> str:
    return f"http://127.0.0.1:{server.http_port}"


@pytest.fixture(scope="module")
def grpc_client(server):
    with RerankClient(server.address, token=TOKEN, timeout=60) as c:
        yield c


def _indices(reply) -> list[int]:
    return [r.index for r in reply.results]


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_cohere_sdk_v2_ranks_as_grpc_does(base, grpc_client, dl19) -> None:
    query, docs = dl19
    co = cohere.ClientV2(base_url=base, api_key=TOKEN, timeout=60)
    reply = co.rerank(model="minilm", query=query, documents=[t for _, t in docs], top_n=5)
    assert isinstance(reply, cohere.V2RerankResponse)
    expected = grpc_client.rerank(query, docs, top_n=5, normalize=True)
    assert [r.index for r in reply.results] == [r.index for r in expected.results]
    assert [r.relevance_score for r in reply.results] == pytest.approx([r.score for r in expected.results])
    scores = [r.relevance_score for r in reply.results]  # minilm's cosine scale, monotone along the ranking
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    assert reply.id and reply.meta.api_version.version == "2" and reply.meta.billed_units.search_units == 1
    usage = reply.meta.model_extra["usage"]  # the pairwise usage rides in meta (the SDK keeps extras)
    assert usage["comparisons"] == 20 * 19 and usage["partial"] is False
    assert usage["order_inconsistency"] == pytest.approx(expected.usage.order_inconsistency)


def test_cohere_sdk_v1_objects_rank_fields_and_return_documents(base, grpc_client, dl19) -> None:
    query, docs = dl19
    objects = [{"title": f"doc {d}", "body": t, "id": d} for d, t in docs[:8]]
    co = cohere.Client(base_url=base, api_key=TOKEN, timeout=60)
    reply = co.rerank(
        model="minilm", query=query, documents=objects, rank_fields=["body"], return_documents=True, top_n=3
    )
    assert isinstance(reply, cohere.RerankResponse)
    expected = grpc_client.rerank(query, [(o["id"], f"body: {o['body']}") for o in objects], top_n=3)
    assert [r.index for r in reply.results] == [r.index for r in expected.results]
    for r in reply.results:  # the object as sent comes back
        assert r.document.model_dump(exclude_none=True) == objects[r.index] or dict(r.document) == objects[r.index]
    plain = co.rerank(model="minilm", query=query, documents=[{"text": t} for _, t in docs[:8]])
    assert [r.index for r in plain.results] == _indices(grpc_client.rerank(query, docs[:8]))
    assert all(r.document is None for r in plain.results)


def test_response_json_validates_against_the_sdk_types(base, dl19) -> None:
    query, docs = dl19
    body = {"model": "minilm", "query": query, "documents": [t for _, t in docs[:6]], "return_documents": True}
    for version, response_type in (("v1", cohere.RerankResponse), ("v2", cohere.V2RerankResponse)):
        raw = httpx.post(f"{base}/{version}/rerank", json=body, headers=_auth(), timeout=60).json()
        parsed = response_type.model_validate(raw)
        assert len(parsed.results) == 6 and parsed.results[0].relevance_score >= parsed.results[-1].relevance_score
        assert raw["results"][0]["document"] == {"text": docs[raw["results"][0]["index"]][1]}
        assert raw["meta"]["models"] == ["minilm"]


def test_langchain_cohere_rerank_ranks_langchain_documents(base, grpc_client, dl19) -> None:
    rerank_module = pytest.importorskip("langchain_cohere")
    from langchain_core.documents import Document

    query, docs = dl19
    documents = [Document(page_content=t, metadata={"id": d}) for d, t in docs]
    reranker = rerank_module.CohereRerank(base_url=base, cohere_api_key=TOKEN, model="minilm", top_n=4)
    out = reranker.compress_documents(documents, query)
    expected = grpc_client.rerank(query, docs, top_n=4, normalize=True)
    assert [d.metadata["id"] for d in out] == expected.ids
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx([r.score for r in expected.results])


def test_pairwise_options_ride_as_extra_fields(base, grpc_client, dl19) -> None:
    query, docs = dl19
    extras = {"sampler": "active", "fraction": 0.3, "aggregator": "hodgerank", "seed": 7, "calibration": "bias"}
    co = cohere.ClientV2(base_url=base, api_key=TOKEN, timeout=60)
    reply = co.rerank(
        model="minilm", query=query, documents=[t for _, t in docs],
        request_options={"additional_body_parameters": extras},
    )  # fmt: skip
    expected = grpc_client.rerank(
        query, docs, sampler="active", budget=0.3, aggregator="hodgerank", seed=7, calibration="bias"
    )
    assert [r.index for r in reply.results] == _indices(expected)
    usage = reply.meta.model_extra["usage"]
    assert usage["comparisons"] == expected.usage.comparisons < 20 * 19
    assert usage["budget"] == expected.usage.budget == round(0.3 * 20 * 19)


def test_several_models_fuse(base, grpc_client, dl19) -> None:
    query, docs = dl19
    body = {"models": ["minilm", "minilm-b"], "fusion": "borda", "query": query, "documents": [t for _, t in docs]}
    raw = httpx.post(f"{base}/v1/rerank", json=body, headers=_auth(), timeout=60).json()
    expected = grpc_client.rerank(query, docs, models=["minilm", "minilm-b"], fusion="borda")
    assert [r["index"] for r in raw["results"]] == _indices(expected)
    assert raw["meta"]["models"] == ["minilm", "minilm-b"]


def test_tei_rerank(base, grpc_client, dl19) -> None:
    query, docs = dl19
    texts = [t for _, t in docs]
    raw = httpx.post(
        f"{base}/rerank", json={"query": query, "texts": texts, "raw_scores": True, "return_text": True},
        headers=_auth(), timeout=60,
    ).json()  # fmt: skip
    expected = grpc_client.rerank(query, docs)
    assert [r["index"] for r in raw] == _indices(expected)
    assert [r["score"] for r in raw] == pytest.approx([r.score for r in expected.results])
    assert all(r["text"] == texts[r["index"]] for r in raw)
    normalized = httpx.post(f"{base}/rerank", json={"query": query, "texts": texts}, headers=_auth(), timeout=60)
    scores = [r["score"] for r in normalized.json()]
    assert scores == sorted(scores, reverse=True) and scores[0] < 1.0 and "text" not in normalized.json()[0]
    assert float(normalized.headers["x-rerank-server-ms"]) > 0


def test_tei_truncate_cuts_over_long_texts_instead_of_refusing(base, server, dl19) -> None:
    query, docs = dl19
    limit = server.service.models["minilm"].max_chars
    texts = [docs[0][1], "x" * (limit + 5)]
    refused = httpx.post(f"{base}/rerank", json={"query": query, "texts": texts}, headers=_auth(), timeout=60)
    assert refused.status_code == 400 and refused.json()["field"] == "texts[1]"
    for direction in ("Right", "Left"):
        body = {"query": query, "texts": texts, "truncate": True, "truncation_direction": direction}
        ok = httpx.post(f"{base}/rerank", json=body, headers=_auth(), timeout=60)
        assert ok.status_code == 200 and sorted(r["index"] for r in ok.json()) == [0, 1]


def test_retrieve_and_rerank_as_grpc(base, grpc_client) -> None:
    query = "what are the structural and aeroelastic problems associated with flight of high speed aircraft"
    body = {"query": query, "k": 20, "top_n": 5, "sampler": "random", "fraction": 0.5, "seed": 3, "score_format": "raw"}
    raw = httpx.post(f"{base}/v1/retrieve_and_rerank", json=body, headers=_auth(), timeout=60).json()
    expected = grpc_client.retrieve_and_rerank(query, k=20, top_n=5, sampler="random", budget=0.5, seed=3)
    assert [r["id"] for r in raw["results"]] == expected.ids
    assert [r["score"] for r in raw["results"]] == pytest.approx([r.score for r in expected.results])
    assert raw["retrieved"] == 20 and raw["usage"]["comparisons"] == 190 and raw["models"] == ["minilm"]
    first = raw["results"][0]
    assert first["text"] and "title" in first["metadata"] and isinstance(first["retrieval_rank"], int)


def test_models_health_ready(base, server) -> None:
    models = httpx.get(f"{base}/v1/models", headers=_auth(), timeout=10).json()
    assert [m["name"] for m in models["models"]] == ["minilm", "minilm-b"]
    assert models["models"][0]["is_default"] and models["models"][0]["endpoints"] == ["rerank"]
    assert models["max_candidates"] == server.config.max_candidates
    assert models["index"]["model"] == "minilm" and models["index"]["count"] > 200
    assert httpx.get(f"{base}/health", timeout=10).json() == {"status": "ok"}  # open: no token
    assert httpx.get(f"{base}/ready", timeout=10).status_code == 200


def test_openapi_is_served_and_docs_http_api_json_is_current(base) -> None:
    served = httpx.get(f"{base}/openapi.json", timeout=10).json()
    written = json.loads((ROOT / "docs" / "http-api.json").read_text())
    assert served == written, "docs/http-api.json is stale: run `python -m rerank.server.http`"
    for path in ("/v1/rerank", "/v2/rerank", "/rerank", "/v1/retrieve_and_rerank", "/v1/models", "/health", "/ready"):
        assert path in served["paths"]
    options = served["components"]["schemas"]["CohereRerankRequest"]["properties"]
    assert {"sampler", "comparisons", "fraction", "aggregator", "calibration", "seed", "time_budget_ms"} <= set(options)
    assert "Which pairs to compare" in options["sampler"]["description"]  # from the .proto comments


def test_http_and_grpc_comparisons_share_one_scheduler() -> None:
    """An HTTP and a gRPC request queued together are answered by one model call."""
    gate = threading.Event()
    model = FakeModel(gate=gate)
    config = ServerConfig(port=0, http_port=0, max_wait_ms=0.0, warmup=False)
    docs = [(f"d{i}", f"passage {i}") for i in range(5)]  # all pairs: 20 comparisons each
    with (
        RerankServer(config, models={"fake": model}) as srv,
        RerankClient(srv.address, timeout=30) as c,
        ThreadPoolExecutor(3) as pool,
    ):
        blocker = pool.submit(c.rerank, "q", docs[:2])  # holds the model: the next two queue behind it
        assert model.started.wait(10)
        body = {"query": "q", "documents": [t for _, t in docs]}
        url = f"http://127.0.0.1:{srv.http_port}/v2/rerank"
        over_http = pool.submit(httpx.post, url, json=body, timeout=30)
        over_grpc = pool.submit(c.rerank, "q", docs)
        _wait_for(lambda: srv.schedulers["fake"].queue_depth == 40)
        gate.set()
        assert [x["index"] for x in over_http.result(30).json()["results"]] == [4, 3, 2, 1, 0]
        assert _indices(over_grpc.result(30)) == [4, 3, 2, 1, 0] and blocker.result(30).ids == ["d1", "d0"]
        assert model.batch_sizes == [2, 40]  # the blocker alone, then HTTP + gRPC in one call
        merged = srv.metrics.registry.get_sample_value("rerank_batch_requests_sum", {"model": "fake"})
        assert merged == 1 + 2


def test_serve_http_port_answers_then_drains_on_sigterm(minilm_store) -> None:
    """`rerank serve --http-port 0`: both faces up; on SIGTERM /ready turns 503 first (drain), then exit 0."""
    import os
    import signal
    import subprocess
    import sys

    cmd = [
        sys.executable, "-m", "rerank.server", "serve", "--port", "0", "--http-port", "0",
        "--store", str(minilm_store.root), "--drain", "2", "--no-warmup", "--log-level", "WARNING",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=os.environ)
    try:
        words = proc.stdout.readline().split()
        assert words[:3] == ["rerank:", "serving", "on"] and words[-2] == "http", words
        base = f"http://{words[-1]}"
        reply = httpx.post(f"{base}/v2/rerank", json={"query": "plants", "documents": ["a tree", "a car"]}, timeout=60)
        assert reply.status_code == 200 and reply.json()["meta"]["models"] == ["minilm"]
        with RerankClient(words[3], timeout=60) as c:
            assert len(c.rerank("plants", ["a tree", "a car"]).results) == 2
        assert httpx.get(f"{base}/ready", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        statuses = set()
        end = time.monotonic() + 10
        while 503 not in statuses and time.monotonic() < end:
            statuses.add(httpx.get(f"{base}/ready", timeout=5).status_code)
        assert 503 in statuses and httpx.get(f"{base}/health", timeout=5).status_code == 200
        assert proc.wait(60) == 0
        assert proc.stdout.readline().strip() == "rerank: stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
