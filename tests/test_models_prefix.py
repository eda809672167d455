"""Shared prompt prefixes (models/prefix.py): the grouping, and that a causal model run as prefix + suffixes
gives the p of the whole prompts (tiny BPE Llama replica with a chat template, torch fp32 and int8)."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from rerank.models.prefix import MIN_SHARED_PREFIX, share_groups
from rerank.models.testing import SAMPLE_PASSAGES, SAMPLE_QUERIES

os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUERIES = SAMPLE_QUERIES
PASSAGES = [*SAMPLE_PASSAGES, "green leaf plants make sugar from sunlight"]


def prp_like(n_queries: int, n_passages: int, *, header: int = 30, q: int = 12, p: int = 60):
    """Token ids shaped like PRP prompts: header, query, passage a, passage b, answer cue."""
    rng = np.random.default_rng(0)
    head = list(range(1, header + 1))
    queries = [rng.integers(100, 200, q).tolist() for _ in range(n_queries)]
    passages = [rng.integers(200, 900, p - 7 * i).tolist() for i in range(n_passages)]
    seqs, keys = [], []
    for qi, qs in enumerate(queries):
        for a in range(n_passages):
            for b in range(n_passages):
                if a != b:
                    seqs.append(head + qs + [7] + passages[a] + [8] + passages[b] + [9, 10])
                    keys.append((qi, a))
    return seqs, keys


def check_cover(groups, whole, seqs):
    rows = sorted([r for g in groups for r in g.rows] + list(whole))
    assert rows == list(range(len(seqs))), "every sequence is run exactly once"
    for g in groups:
        first = seqs[g.rows[0]][: g.prefix]
        assert all(list(seqs[r][: g.prefix]) == first and len(seqs[r]) > g.prefix for r in g.rows)


def test_all_pairs_group_by_query_and_first_passage():
    seqs, keys = prp_like(2, 5)
    groups, whole = share_groups(seqs)
    check_cover(groups, whole, seqs)
    assert not whole and len(groups) == 2 * 5
    for g in groups:
        assert len({keys[r] for r in g.rows}) == 1 and len(g.rows) == 4


def test_lone_pairs_share_the_query_prefix_and_unrelated_ones_run_whole():
    seqs, keys = prp_like(2, 5)
    one_per_a = [next(i for i, k in enumerate(keys) if k == (qi, a)) for qi in range(2) for a in range(5)]
    picked = [seqs[i] for i in one_per_a]
    groups, whole = share_groups(picked)
    check_cover(groups, whole, picked)
    assert len(groups) == 2 and all(g.prefix >= 30 + 12 for g in groups)  # header + query
    rng = np.random.default_rng(1)
    unrelated = [rng.integers(0, 1000, 50).tolist() for _ in range(6)]
    groups, whole = share_groups(unrelated)
    assert groups == [] and whole == list(range(6))


def test_short_common_prefixes_are_not_worth_a_group():
    seqs = [[1] * (MIN_SHARED_PREFIX - 1) + [i, 5, 6] for i in range(10, 14)]
    groups, whole = share_groups(seqs)
    assert groups == [] and whole == [0, 1, 2, 3]
    assert share_groups([[1, 2, 3] * 10] * 3)[0][0].prefix == 29  # duplicates: each suffix keeps a token


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    from rerank.models.testing import build_bpe_llama

    return build_bpe_llama(tmp_path_factory.mktemp("bpe") / "chat-llm")


def _items(pairs_per_query: int | None = None):
    items = [(q, a, b) for q in QUERIES for a in PASSAGES for b in PASSAGES if a != b]
    if pairs_per_query is None:
        return items
    rng = np.random.default_rng(3)
    return [items[i] for i in sorted(rng.choice(len(items), 2 * pairs_per_query, replace=False))]


@pytest.mark.parametrize("pairs", [None, 6], ids=["all-pairs", "sampled"])
def test_shared_prefixes_give_the_whole_prompts_p(llama, pairs):
    from rerank.models import load_model

    shared = load_model(llama, backend="torch", kind="prp", attn_implementation="sdpa")
    whole = load_model(llama, backend="torch", kind="prp", attn_implementation="sdpa")
    whole.options = replace(whole.options, share_prefixes=False)
    assert shared.backend.shares_prefixes
    items = _items(pairs)
    a, b = shared.compare_batch(items), whole.compare_batch(items)
    dp = float(np.max(np.abs(a.p - b.p)))
    print(f"\nPREFIX {len(items)} items: max|dp| {dp:.2e}; fed tokens {a.stats.padded_tokens} shared vs "
          f"{b.stats.padded_tokens} whole")
    assert dp <= 1e-5
    assert np.ptp(b.p) > 0.01, "the replica's p do not vary: the test would prove nothing"
    assert a.stats.tokens == b.stats.tokens  # the same prompts ...
    if pairs is None:
        assert a.stats.padded_tokens < 0.6 * b.stats.tokens  # ... with the shared prefixes run once


def test_int8_torch_backend_runs_shared_prefixes(llama):
    from rerank.models import load_model

    fp32 = load_model(llama, backend="torch", kind="prp")
    int8 = load_model(llama, backend="torch", kind="prp", dtype="int8")
    assert int8.provider == "torch:cpu:int8" and fp32.provider == "torch:cpu:float32"
    items = _items()
    p8, p32 = int8.compare_batch(items).p, fp32.compare_batch(items).p
    assert p8.shape == p32.shape and np.all((p8 > 0) & (p8 < 1))
    assert np.corrcoef(p8, p32)[0, 1] > 0.9  # quantized, not equal; the export's rule decides if it is used


def test_a_torch_record_is_followed_where_torch_is_installed(monkeypatch):
    from rerank.models import cpu_default

    for dtype in ("float32", "int8"):
        assert cpu_default.backend_for_load({"backend": "torch", "dtype": dtype}) == ("torch", {"dtype": dtype})
    real = cpu_default.importlib.util.find_spec
    monkeypatch.setattr(cpu_default.importlib.util, "find_spec", lambda m: None if m == "torch" else real(m))
    assert cpu_default.backend_for_load({"backend": "torch", "dtype": "int8"}) == ("onnx", {})
