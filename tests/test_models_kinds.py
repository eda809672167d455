"""ONNX vs torch parity for every model kind on tiny randomly initialised checkpoints, plus unit checks."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from rerank.models import KINDS, export_model, load_model
from rerank.models import testing as tiny
from rerank.models.batching import make_batches
from rerank.models.export import parity_figures
from rerank.models.kind import sigmoid

BUDGETS = {"max_query_tokens": 12, "max_passage_tokens": 20}

ITEMS = [
    ("how do plants make food", "photosynthesis sunlight sugar water", "stock market shares fell"),
    ("how do plants make food", "stock market shares fell", "photosynthesis sunlight sugar water"),
    ("coffee in the morning", "hot coffee cup brew", "football team goal match"),
    ("coffee in the morning", "football team goal match", "hot coffee cup brew"),
    ("python code", "python function program bug " * 10, "river mountain rain"),
    ("weather", "rain cloud snow storm", "cold tea"),
]

CASES = {
    "duo-cross-encoder": (tiny.build_tiny_bert_classifier, {}),
    "duo-cross-encoder-2logit-3seg": (
        lambda d: tiny.build_tiny_bert_classifier(d, num_labels=2, type_vocab_size=3),
        {},
    ),
    "duo-t5": (tiny.build_tiny_t5, {}),
    "prp": (tiny.build_tiny_llama, {}),
    "prp-no-chat-template": (lambda d: tiny.build_tiny_llama(d, chat_template=False), {}),
    "mono-cross-encoder": (tiny.build_tiny_bert_classifier, {}),
    "mono-t5": (tiny.build_tiny_t5, {}),
}


def kind_of(case: str) -> str:
    return next(k for k in KINDS if case.startswith(k))


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request, tmp_path_factory):
    case = request.param
    build, options = CASES[case]
    root = tmp_path_factory.mktemp(case)
    src = build(root / "src")
    manifest = export_model(src, kind_of(case), root / "model", parity_seed=0, **BUDGETS, **options)
    return case, root / "model", manifest


def test_kind_registry():
    assert set(KINDS) == {"bi-encoder", "duo-cross-encoder", "duo-t5", "prp", "mono-cross-encoder", "mono-t5",
                          "setwise"}


def test_parity_onnx_vs_torch(exported):
    _case, folder, manifest = exported
    parity = manifest.variants["fp32"].parity
    assert parity["passed"] and parity["order_agrees"], parity
    assert parity["max_abs_diff_p"] < 1e-4
    assert parity["truncated_items"] > 0  # the random parity inputs exercised truncation
    onnx = load_model(folder, backend="onnx", variant="fp32")  # the fp32 graph, whatever the CPU default
    ref = load_model(folder, backend="torch")
    p_onnx = onnx.compare_batch(ITEMS).p
    p_torch = ref.compare_batch(ITEMS).p
    assert np.max(np.abs(p_onnx - p_torch)) < 1e-4
    assert list(np.argsort(p_onnx)) == list(np.argsort(p_torch))
    assert parity_figures(p_torch, p_onnx, 1e-5)["order_agrees"]
    assert ((p_onnx > 0) & (p_onnx < 1)).all()


def test_manifest_fields(exported):
    case, _folder, manifest = exported
    data = manifest.to_dict()
    for key in ("kind", "max_query_tokens", "max_passage_tokens", "prompt_template", "opset", "source"):
        assert key in data
    assert data["source"]["sha256"] and data["opset"] == 17
    assert (data["max_query_tokens"], data["max_passage_tokens"]) == (12, 20)
    if kind_of(case) in ("duo-t5", "prp", "mono-t5"):
        assert "{query}" in data["prompt_template"] and "{a}" in data["prompt_template"]
        assert len(data["options"]["label_token_ids"]) == 2
    else:
        assert data["prompt_template"] is None


def test_budgets_always_fit_both_passages(exported):
    _case, folder, _ = exported
    model = load_model(folder)
    long = "photosynthesis sunlight " * 60
    prepared = model.prepare([("plants " * 40, long, long + "sugar")])
    assert prepared.truncated_sequences == (2 if model.pointwise else 1)  # mono: one sequence per passage
    assert len(prepared.input_ids[0]) <= model._kind.max_sequence_tokens()
    result = model.compare_batch([("plants " * 40, long, "water")])
    assert result.stats.truncated_items == 1


def test_cross_encoder_layout(tmp_path):
    src = tiny.build_tiny_bert_classifier(tmp_path / "src")
    export_model(src, "duo-cross-encoder", tmp_path / "m", parity_seed=0, **BUDGETS)
    model = load_model(tmp_path / "m")
    prepared = model.prepare([("q words", "first passage", "second passage")])
    ids, types = prepared.input_ids[0], prepared.token_type_ids[0]
    cls_id, sep_id = 101, 102
    assert ids[0] == cls_id and ids[-1] == sep_id and list(ids).count(sep_id) == 3
    first_sep = list(ids).index(sep_id)
    assert set(types[: first_sep + 1]) == {0} and set(types[first_sep + 1 :]) == {1}


def test_int8_variant(tmp_path):
    src = tiny.build_tiny_bert_classifier(tmp_path / "src")
    manifest = export_model(
        src, "duo-cross-encoder", tmp_path / "m", quantize="int8", parity_seed=0, **BUDGETS
    )
    assert set(manifest.variants) == {"fp32", "int8"}
    parity = manifest.variants["int8"].parity
    assert parity["passed"] and parity["tolerance"] > 1e-3
    assert manifest.default_variant == "fp32"
    int8 = load_model(tmp_path / "m", variant="int8")
    assert int8.variant == "int8"
    p = int8.compare_batch(ITEMS).p
    assert np.max(np.abs(p - load_model(tmp_path / "m").compare_batch(ITEMS).p)) < 0.35


def test_torch_backend_from_checkpoint_and_bf16(tmp_path):
    src = tiny.build_tiny_t5(tmp_path / "src")
    fp32 = load_model(src, backend="torch", kind="duo-t5", max_query_tokens=12, max_passage_tokens=20)
    bf16 = load_model(
        src, backend="torch", kind="duo-t5", dtype="bfloat16", max_query_tokens=12, max_passage_tokens=20
    )
    assert bf16.provider == "torch:cpu:bfloat16"
    assert np.max(np.abs(fp32.compare_batch(ITEMS).p - bf16.compare_batch(ITEMS).p)) < 0.05


def test_make_batches_sorted_and_bounded():
    lengths = [5, 50, 7, 30, 30, 2, 49]
    batches = make_batches(lengths, max_tokens=100, max_batch=3)
    assert sorted(int(i) for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert (len(b) <= 3 and len(b) * max(lengths[i] for i in b) <= 100) or len(b) == 1
    assert [lengths[i] for i in batches[0]] == [50, 49]
    assert make_batches([500], max_tokens=10, max_batch=4)[0].tolist() == [0]


def test_sigmoid_and_parity_figures():
    x = np.array([-800.0, -1.0, 0.0, 1.0, 800.0])
    assert np.allclose(sigmoid(x), [0.0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-1)), 1.0])
    f = parity_figures(np.array([0.1, 0.5, 0.9]), np.array([0.1, 0.5, 0.9]), 1e-5)
    assert f["order_agrees"] and f["max_abs_diff_p"] == 0 and f["kendall_tau"] == 1.0
    f = parity_figures(np.array([0.1, 0.2, 0.9]), np.array([0.2, 0.1, 0.4]), 1e-5)
    assert f["order_flips"] == 1 and f["decision_flips"] == 1 and not f["order_agrees"]
