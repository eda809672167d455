"""The RAG client libraries against the HTTP face, each pointed at a self-hosted base URL as its own docs say
(versions pinned in the ``clients`` extra of pyproject.toml): LiteLLM's ``cohere/``, ``jina_ai/``,
``infinity/`` and ``huggingface/`` (TEI) providers, LlamaIndex's Cohere postprocessor and Haystack's
CohereRanker. A real server on 127.0.0.1 with a bearer token; a fake model whose relevance is the number in
each text, so the expected order is known. (The cohere SDK and LangChain: tests/test_http_api.py.)"""

from __future__ import annotations

import os

import pytest

from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig
from rerank.server.testing import FakeModel

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM would fetch its price list at import

TEXTS = [f"passage {n}" for n in (3, 9, 1, 7, 5)]
BEST = [1, 3]  # "passage 9", "passage 7"
TOKEN = "client-s3cret"


@pytest.fixture(scope="module")
def base():
    config = ServerConfig(port=0, http_port=0, auth_token=TOKEN, warmup=False)
    with RerankServer(config, models={"fake": FakeModel()}) as srv:
        yield f"http://127.0.0.1:{srv.http_port}"


@pytest.mark.parametrize("provider", ["cohere", "jina_ai", "infinity", "huggingface"])
def test_litellm_rerank_providers(base, provider) -> None:
    import litellm

    reply = litellm.rerank(model=f"{provider}/fake", query="q", documents=TEXTS, top_n=2, api_base=base,
                           api_key=TOKEN)
    indices = [r["index"] for r in reply.results]
    # TEI has no top_n: LiteLLM's huggingface/ provider gets every text back, best first
    assert indices[:2] == BEST and len(indices) == (5 if provider == "huggingface" else 2)
    scores = [r["relevance_score"] for r in reply.results]
    assert scores == sorted(scores, reverse=True)


def test_llamaindex_cohere_rerank_postprocessor(base) -> None:
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.cohere_rerank import CohereRerank

    postprocessor = CohereRerank(top_n=2, model="fake", api_key=TOKEN, base_url=base)
    nodes = postprocessor.postprocess_nodes([NodeWithScore(node=TextNode(text=t)) for t in TEXTS], query_str="q")
    assert [n.node.text for n in nodes] == [TEXTS[i] for i in BEST] and nodes[0].score >= nodes[1].score


def test_haystack_cohere_ranker(base) -> None:
    from haystack import Document
    from haystack.utils import Secret
    from haystack_integrations.components.rankers.cohere import CohereRanker

    ranker = CohereRanker(model="fake", top_k=2, api_key=Secret.from_token(TOKEN), api_base_url=base)
    documents = ranker.run(query="q", documents=[Document(content=t) for t in TEXTS])["documents"]
    assert [d.content for d in documents] == [TEXTS[i] for i in BEST]
