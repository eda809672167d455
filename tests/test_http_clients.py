"""The RAG client libraries against the HTTP face, each pointed at a self-hosted base URL as its own docs say
(versions pinned in the ``clients`` extra of pyproject.toml; the table in docs/api.md, "Client compatibility",
has a row per test here): the cohere SDK's async clients and ``models.list``/``models.get``; LangChain's
``InfinityRerank``; LlamaIndex's Cohere, TEI and Jina postprocessors; Haystack's CohereRanker, JinaRanker and
HuggingFaceTEIRanker; LiteLLM's ``cohere/``, ``jina_ai/``, ``infinity/`` and ``huggingface/`` providers. (The
cohere SDK's sync clients and LangChain's ``CohereRerank``: tests/test_http_api.py.)

One real server on 127.0.0.1 for the module (the real MiniLM, fp32, a bearer token); each client's ranking,
scores and usage are compared with what the gRPC face answers for the same request."""

from __future__ import annotations

import asyncio
import os

import pytest

from rerank.client import RerankClient, TokenOverPlaintextWarning
from rerank.evaluation.trec import rank_docs, read_corpus, read_queries, read_run
from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig

# tests talk only to 127.0.0.1: LiteLLM would fetch its price list at import and, for huggingface/, a tokenizer
# from the hub to estimate usage; Haystack would send telemetry
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
pytestmark = pytest.mark.filterwarnings(f"ignore::{TokenOverPlaintextWarning.__module__}.TokenOverPlaintextWarning")

TOKEN = "client-s3cret"
UNCACHED = "minilm-uncached"
TOP_N = 3


@pytest.fixture(scope="module")
def server(minilm_store):
    from rerank.models import load_model

    # fp32: batch-independent answers. "minilm-uncached" keeps no embeddings, so each request runs (and counts in
    # its usage) every token: the tests of usage use it; the others get the cached model's quick answers
    models = {name: load_model("minilm", store=minilm_store, variant="fp32", cache_items=cache)
              for name, cache in (("minilm", None), (UNCACHED, 0))}
    config = ServerConfig(port=0, http_port=0, auth_token=TOKEN, warmup=False, max_wait_ms=2.0, grace_s=2.0)
    with RerankServer(config, models=models) as srv:
        yield srv


@pytest.fixture(scope="module")
def base(server) -> str:
    return f"http://127.0.0.1:{server.http_port}"


@pytest.fixture(scope="module")
def case(data_dir) -> tuple[str, list[str]]:
    """A DL19 query and its BM25 top 10 passages, in BM25 order."""
    folder = data_dir / "trec-dl-2019-passage"
    queries, corpus = read_queries(folder / "queries.tsv"), read_corpus(folder / "corpus.jsonl")
    run = read_run(folder / "run.bm25.top100.trec")
    qid = sorted(run)[1]
    return queries[qid], [corpus[d] for d in rank_docs(run[qid]) if d in corpus][:10]


@pytest.fixture(scope="module")
def expected(server, case):
    """The gRPC face's answer to the same request (all documents, the scores a threshold can use)."""
    query, texts = case
    with RerankClient(server.address, token=TOKEN, timeout=60) as c:
        reply = c.rerank(query, [(str(i), t) for i, t in enumerate(texts)], normalize=True)
    assert [r.index for r in reply.results] != list(range(len(texts)))  # MiniLM re-orders BM25's list
    return reply


@pytest.fixture(scope="module")
def tokens(server, case) -> int:
    """The tokens the model runs for the request (gRPC ``usage.tokens``): Jina's and Infinity's usage."""
    query, texts = case
    with RerankClient(server.address, token=TOKEN, timeout=60) as c:
        reply = c.rerank(query, [(str(i), t) for i, t in enumerate(texts)], models=[UNCACHED])
    assert reply.usage.tokens > 0
    return reply.usage.tokens


def _top(expected, n: int = TOP_N) -> tuple[list[int], list[float]]:
    return [r.index for r in expected.results[:n]], [r.score for r in expected.results[:n]]


def _assert_ranks(indices, scores, expected, n: int = TOP_N) -> None:
    want_indices, want_scores = _top(expected, n)
    assert list(indices) == want_indices
    assert list(scores) == pytest.approx(want_scores, abs=1e-6)


# --- cohere SDK: async clients, models.list / models.get ----------------------------------------------------------


def test_cohere_async_v2_and_v1_rerank(base, case, expected) -> None:
    import cohere

    query, texts = case

    async def both():
        v2 = cohere.AsyncClientV2(base_url=base, api_key=TOKEN, timeout=60)
        v1 = cohere.AsyncClient(base_url=base, api_key=TOKEN, timeout=60)
        return await asyncio.gather(
            v2.rerank(model="minilm", query=query, documents=texts, top_n=TOP_N),
            v1.rerank(model="minilm", query=query, documents=texts, top_n=TOP_N, return_documents=True),
        )

    reply_v2, reply_v1 = asyncio.run(both())
    assert isinstance(reply_v2, cohere.V2RerankResponse) and isinstance(reply_v1, cohere.RerankResponse)
    for reply, version in ((reply_v2, "2"), (reply_v1, "1")):
        _assert_ranks([r.index for r in reply.results], [r.relevance_score for r in reply.results], expected)
        assert reply.meta.api_version.version == version and reply.meta.billed_units.search_units == 1
        assert reply.meta.model_extra["usage"]["comparisons"] == expected.usage.comparisons
    assert [r.document.text for r in reply_v1.results] == [texts[r.index] for r in reply_v1.results]


def test_cohere_models_list_and_get_sync_and_async(base, server) -> None:
    import cohere

    served = server.service.models["minilm"]
    co = cohere.ClientV2(base_url=base, api_key=TOKEN, timeout=30)
    listed = co.models.list(endpoint="rerank")
    assert [m.name for m in listed.models] == ["minilm", UNCACHED] and listed.models[0].endpoints == ["rerank"]
    one = co.models.get("minilm")
    assert one.name == "minilm" and one.endpoints == ["rerank"]
    assert one.model_extra["max_passage_tokens"] == served.max_passage_tokens
    with pytest.raises(cohere.core.ApiError) as err:  # a model not served: 404 naming it
        co.models.get("nope")
    assert err.value.status_code == 404 and "nope" in str(err.value.body)

    async def both():
        aco = cohere.AsyncClient(base_url=base, api_key=TOKEN, timeout=30)
        return await asyncio.gather(aco.models.list(), aco.models.get("minilm"))

    listed_async, one_async = asyncio.run(both())
    assert [m.name for m in listed_async.models] == ["minilm", UNCACHED] and one_async.endpoints == ["rerank"]


# --- LangChain: InfinityRerank (CohereRerank: tests/test_http_api.py) --------------------------------------------


def test_langchain_infinity_rerank(base, case, expected) -> None:
    from infinity_client import Client
    from langchain_community.document_compressors.infinity_rerank import InfinityRerank
    from langchain_core.documents import Document

    query, texts = case
    client = Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    reranker = InfinityRerank(client=client, model="minilm", top_n=TOP_N)
    out = reranker.compress_documents([Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)],
                                      query)
    _assert_ranks([d.metadata["i"] for d in out], [d.metadata["relevance_score"] for d in out], expected)


# --- LlamaIndex: Cohere, TEI and Jina postprocessors --------------------------------------------------------------


def _nodes(texts: list[str]):
    from llama_index.core.schema import NodeWithScore, TextNode

    return [NodeWithScore(node=TextNode(text=t, id_=str(i))) for i, t in enumerate(texts)]


@pytest.mark.parametrize("postprocessor", ["cohere", "tei", "jina"])
def test_llamaindex_rerank_postprocessors(base, case, expected, postprocessor) -> None:
    query, texts = case
    if postprocessor == "cohere":
        from llama_index.postprocessor.cohere_rerank import CohereRerank

        ranker = CohereRerank(top_n=TOP_N, model="minilm", api_key=TOKEN, base_url=base)
    elif postprocessor == "tei":
        from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

        # its docs: auth_token is the Authorization header's value; it sends the bare token
        ranker = TextEmbeddingInference(top_n=TOP_N, base_url=base, auth_token=TOKEN, model_name="minilm")
    else:
        from llama_index.postprocessor.jinaai_rerank import JinaRerank

        ranker = JinaRerank(top_n=TOP_N, model="minilm", api_key=TOKEN, base_url=f"{base}/v1")
    nodes = ranker.postprocess_nodes(_nodes(texts), query_str=query)
    _assert_ranks([int(n.node.id_) for n in nodes], [n.score for n in nodes], expected)


# --- Haystack: CohereRanker, JinaRanker, HuggingFaceTEIRanker -----------------------------------------------------


def _documents(texts: list[str]):
    from haystack import Document

    return [Document(content=t, id=str(i)) for i, t in enumerate(texts)]


def test_haystack_cohere_ranker(base, case, expected) -> None:
    from haystack.utils import Secret
    from haystack_integrations.components.rankers.cohere import CohereRanker

    query, texts = case
    ranker = CohereRanker(model="minilm", top_k=TOP_N, api_key=Secret.from_token(TOKEN), api_base_url=base)
    documents = ranker.run(query=query, documents=_documents(texts))["documents"]
    _assert_ranks([int(d.id) for d in documents], [d.score for d in documents], expected)


def test_haystack_jina_ranker_sync_and_async(base, case, expected, tokens) -> None:
    from haystack.utils import Secret
    from haystack_integrations.components.rankers.jina import JinaRanker

    query, texts = case
    key, url = Secret.from_token(TOKEN), f"{base}/v1/rerank"
    ranker = JinaRanker(model=UNCACHED, api_key=key, top_k=TOP_N, base_url=url)
    every = JinaRanker(model=UNCACHED, api_key=key, base_url=url)  # sends "top_n": null
    for out, n in ((ranker.run(query=query, documents=_documents(texts)), TOP_N),
                   (asyncio.run(ranker.run_async(query=query, documents=_documents(texts))), TOP_N),
                   (every.run(query=query, documents=_documents(texts)), len(texts))):
        _assert_ranks([int(d.id) for d in out["documents"]], [d.score for d in out["documents"]], expected, n)
        assert out["meta"] == {"model": UNCACHED, "usage": {"total_tokens": tokens}}


@pytest.mark.parametrize("raw_scores", [False, True])
def test_haystack_huggingface_tei_ranker(server, base, case, expected, raw_scores) -> None:
    from haystack.utils import Secret
    from haystack_integrations.components.rankers.huggingface_api import HuggingFaceTEIRanker
    from haystack_integrations.components.rankers.huggingface_api.ranker import TruncationDirection

    query, texts = case
    ranker = HuggingFaceTEIRanker(url=base, top_k=TOP_N, raw_scores=raw_scores, token=Secret.from_token(TOKEN))
    if raw_scores:  # the aggregator's latent scale, as gRPC SCORE_FORMAT_RAW
        with RerankClient(server.address, token=TOKEN, timeout=60) as c:
            expected = c.rerank(query, [(str(i), t) for i, t in enumerate(texts)])
        out = ranker.run(query=query, documents=_documents(texts))
    else:  # async, with TEI's truncation (no text here is over MiniLM's max_chars: the same ranking)
        direction = TruncationDirection.LEFT
        out = asyncio.run(ranker.run_async(query=query, documents=_documents(texts), truncation_direction=direction))
    _assert_ranks([int(d.id) for d in out["documents"]], [d.score for d in out["documents"]], expected)


# --- LiteLLM: cohere/, jina_ai/, infinity/, huggingface/, hosted_vllm/ -------------------------------------------


@pytest.mark.parametrize("provider", ["cohere", "jina_ai", "infinity", "huggingface"])
def test_litellm_rerank_providers(base, case, expected, tokens, provider, monkeypatch) -> None:
    import litellm

    if provider == "huggingface":  # its cost lookup reads the model's config.json from the hub, offline mode or not
        monkeypatch.setattr(litellm.utils, "_get_max_position_embeddings", lambda model_name: None)
    query, texts = case
    model = UNCACHED if provider in ("jina_ai", "infinity") else "minilm"  # the shapes with usage
    reply = litellm.rerank(model=f"{provider}/{model}", query=query, documents=texts, top_n=TOP_N, api_base=base,
                           api_key=TOKEN, return_documents=True)
    # TEI has no top_n: LiteLLM's huggingface/ provider gets every text back, best first
    n = len(texts) if provider == "huggingface" else TOP_N
    assert len(reply.results) == n
    _assert_ranks([r["index"] for r in reply.results], [r["relevance_score"] for r in reply.results], expected, n)
    assert [r["document"]["text"] for r in reply.results] == [texts[r["index"]] for r in reply.results]
    billed = reply.meta["billed_units"]  # what LiteLLM keeps of each shape's usage
    if provider in ("cohere", "huggingface"):  # huggingface/: LiteLLM's own count, as TEI answers no usage
        assert billed == {"search_units": 1}
    else:  # Jina's and Infinity's usage.total_tokens: the tokens the model ran for this request
        assert billed == {"total_tokens": tokens}
    if provider == "infinity":
        assert reply.meta["tokens"] == {"input_tokens": tokens, "output_tokens": 0}


def test_litellm_hosted_vllm_needs_the_v1_base(base, case, expected) -> None:
    """LiteLLM's ``hosted_vllm/`` posts to ``{api_base}/rerank`` and reads each ``document`` as vLLM's object.
    With ``api_base`` ending in ``/v1`` that is ``/v1/rerank`` (Cohere/Jina shape): it works. At the root it is
    ``/rerank``, whose ``documents`` shape is Infinity's (``document`` a string, as LiteLLM's ``infinity/``
    reads it; the two bodies are alike): the ranking works with ``return_documents=False``; LiteLLM's default
    (``True``) fails in LiteLLM."""
    import litellm

    query, texts = case
    reply = litellm.rerank(model="hosted_vllm/minilm", query=query, documents=texts, top_n=TOP_N,
                           api_base=f"{base}/v1", api_key=TOKEN, return_documents=True)
    _assert_ranks([r["index"] for r in reply.results], [r["relevance_score"] for r in reply.results], expected)
    assert [r["document"]["text"] for r in reply.results] == [texts[r["index"]] for r in reply.results]
    at_root = litellm.rerank(model="hosted_vllm/minilm", query=query, documents=texts, top_n=TOP_N, api_base=base,
                             api_key=TOKEN, return_documents=False)
    _assert_ranks([r["index"] for r in at_root.results], [r["relevance_score"] for r in at_root.results], expected)
    with pytest.raises(litellm.APIConnectionError, match="'str' object has no attribute 'get'"):  # LiteLLM's default
        litellm.rerank(model="hosted_vllm/minilm", query=query, documents=texts, top_n=TOP_N, api_base=base,
                       api_key=TOKEN)
