"""bench/smollm_answers.py: the benchmarks' prompt-keyed answer cache (a stopped SmolLM2 run resumes from it).

On a tiny byte-level BPE Llama replica (models/testing.py) as ``prp`` and ``setwise``: answers from the cache equal
the model's, a second process (a new cache object on the same file) asks the model nothing again, a different
prompt or model tag misses, and a setwise call's token count is the prompt's whether or not it was cached.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from smollm_answers import AnswerCache, SmolAnswers

from rerank.models.load import load_model
from rerank.models.setwise import CHARACTERS, setwise_prompt
from rerank.models.testing import build_bpe_llama

QUERY = "what do plants need"
TEXTS = ["plants need water and light", "the sky is blue", "roots take water from soil", "cats sleep a lot"]


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    extra = [setwise_prompt("what", list("xyzw")) + " Passage: " + " ".join(CHARACTERS[:4])]
    return build_bpe_llama(tmp_path_factory.mktemp("answers") / "llm", extra_lines=extra)


class Counting:
    """The model, counting the prompts it really runs."""

    def __init__(self, model) -> None:
        self.model, self.runs = model, 0
        self.spec, self.name, self.kind = model.spec, model.name, model.kind
        self._kind = model._kind

    def prepare(self, items):
        return self.model.prepare(items)

    def compare_batch(self, items):
        self.runs += len(items)
        return self.model.compare_batch(items)

    def compare_sets(self, query, groups):
        self.runs += len(groups)
        return self.model.compare_sets(query, groups)


def test_prp_answers_resume_from_the_cache_file(llama, tmp_path):
    model = Counting(load_model(llama, "torch", kind="prp"))
    pairs = [(a, b) for a in TEXTS for b in TEXTS if a != b]
    first = SmolAnswers(model, "tag", AnswerCache(tmp_path / "a.sqlite"))
    p = first.compare(QUERY, pairs[:5])
    np.testing.assert_allclose(p, model.model.compare(QUERY, pairs[:5]), atol=1e-6)
    assert (first.asked, first.reused, model.runs) == (5, 0, 5)
    again = SmolAnswers(model, "tag", AnswerCache(tmp_path / "a.sqlite"))  # a new run on the same file
    q = again.compare(QUERY, pairs)
    np.testing.assert_allclose(q[:5], p)
    np.testing.assert_allclose(q, model.model.compare(QUERY, pairs), atol=1e-6)
    assert (again.asked, again.reused, model.runs) == (len(pairs) - 5, 5, len(pairs))
    other = SmolAnswers(model, "another model", AnswerCache(tmp_path / "a.sqlite"))
    other.compare(QUERY, pairs[:1])
    assert other.asked == 1  # the tag is part of the key
    again.compare(QUERY + " now", pairs[:1])
    assert again.asked == len(pairs) - 4  # another prompt misses


def test_setwise_answers_and_tokens_come_back_from_the_cache(llama, tmp_path):
    model = Counting(load_model(llama, "torch", kind="setwise"))
    groups = [TEXTS[:3], TEXTS[1:], TEXTS[::-1]]
    answers = SmolAnswers(model, "tag", AnswerCache(tmp_path / "s.sqlite"))
    probs, stats = answers.compare_sets(QUERY, groups)
    want, want_stats = model.model.compare_sets(QUERY, groups)
    for got, ref in zip(probs, want, strict=True):
        np.testing.assert_allclose(got, ref, atol=1e-6)
    assert stats.tokens == want_stats.tokens
    again = SmolAnswers(model, "tag", AnswerCache(tmp_path / "s.sqlite"))
    cached, cached_stats = again.compare_sets(QUERY, groups)
    assert model.runs == 3 and again.reused == 3
    assert cached_stats.tokens == want_stats.tokens
    for got, ref in zip(cached, probs, strict=True):
        np.testing.assert_allclose(got, ref)
