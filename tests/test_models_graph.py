"""Graph fusion at export, the per-device default variant, measured figures in the manifest, ORT threads."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from rerank.models import Manifest, ModelError, export_model, load_model, record_measurements
from rerank.models import export as export_mod
from rerank.models import testing as tiny
from rerank.models.errors import ParityError
from rerank.models.runtime import CPU, spinning_default

BUDGETS = {"max_query_tokens": 12, "max_passage_tokens": 20}
ITEMS = [
    ("how do plants make food", "photosynthesis sunlight sugar water", "stock market shares fell"),
    ("how do plants make food", "stock market shares fell", "photosynthesis sunlight sugar water"),
    ("coffee in the morning", "hot coffee cup brew", "football team goal match"),
]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return tiny.build_tiny_bert_classifier(tmp_path_factory.mktemp("graph") / "src")


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("graph-model") / "m"
    export_model(
        source, "duo-cross-encoder", out, quantize="int8", cpu_default="int8", parity_seed=0, **BUDGETS
    )
    return out


def test_encoder_graph_is_fused_and_checked(exported):
    m = Manifest.read(exported)
    graph = m.variants["fp32"].graph
    assert graph["optimizer"] == "onnxruntime.transformers.optimizer" and graph["model_type"] == "bert"
    assert graph["fused"]["Attention"] == 2 and graph["fused"]["SkipLayerNormalization"] == 4
    assert m.variants["fp32"].parity["passed"] and m.variants["fp32"].parity["max_abs_diff_p"] < 1e-4
    assert m.variants["int8"].quantization == export_mod.INT8_METHOD
    assert not (exported / "model.plain.onnx").exists()


def test_int8_order_check_counts_only_pairs_apart_by_more_than_the_margin() -> None:
    # a random model's p lie within a few hundredths, where int8 noise of the same size scrambles the order
    # of near-equal pairs (tau over all pairs about 0.5): that is no export defect. A graph that reverses
    # the order of pairs the reference separates clearly is one.
    rng = np.random.default_rng(0)
    ref = 0.33 + 0.1 * rng.random(90)
    noisy = ref + rng.normal(0.0, 0.016, 90)
    figures = export_mod.parity_figures(ref, noisy, export_mod.INT8_MARGIN)
    assert figures["kendall_tau"] < 0.7 < figures["kendall_tau_at_margin"] and figures["pairs_at_margin"] > 50
    export_mod._check(figures, export_mod.INT8_TOLERANCE, export_mod.INT8_MIN_TAU, "noisy")
    assert figures["passed"]
    reversed_ = export_mod.parity_figures(ref, 0.76 - ref, export_mod.INT8_MARGIN)
    with pytest.raises(ParityError, match="parity failed"):
        export_mod._check(reversed_, export_mod.INT8_TOLERANCE, export_mod.INT8_MIN_TAU, "reversed")


def test_unfused_export_matches_fused(source, exported, tmp_path):
    m = export_model(
        source, "duo-cross-encoder", tmp_path / "plain", optimize=False, parity_seed=0, **BUDGETS
    )
    assert m.variants["fp32"].graph == {"optimizer": None}
    fused = load_model(exported, variant="fp32").compare_batch(ITEMS).p
    plain = load_model(tmp_path / "plain").compare_batch(ITEMS).p
    assert np.max(np.abs(fused - plain)) < 1e-4


def test_optimizer_failure_keeps_the_plain_graph(source, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("fusion exploded")

    monkeypatch.setattr(export_mod, "optimize_graph", broken)
    m = export_model(source, "duo-cross-encoder", tmp_path / "m", parity_seed=0, **BUDGETS)
    assert m.variants["fp32"].graph["optimizer"] is None
    assert "fusion exploded" in m.variants["fp32"].graph["optimizer_failed"]
    assert m.variants["fp32"].parity["passed"]
    with pytest.raises(RuntimeError, match="fusion exploded"):
        export_model(source, "duo-cross-encoder", tmp_path / "m2", optimize=True, parity_seed=0, **BUDGETS)
    assert not (tmp_path / "m2").exists()


def test_prompt_kinds_are_not_fused(tmp_path):
    src = tiny.build_tiny_llama(tmp_path / "src")
    m = export_model(src, "prp", tmp_path / "m", parity_seed=0, **BUDGETS)
    assert m.variants["fp32"].graph == {"optimizer": None}
    with pytest.raises(ModelError, match="no graph optimizer"):
        export_model(src, "prp", tmp_path / "m2", optimize=True, **BUDGETS)


def test_cpu_default_variant(exported):
    m = Manifest.read(exported)
    assert m.default_variants == {"cpu": "int8", "cuda": "fp32"} and m.default_variant == "fp32"
    assert m.variant_for("cpu") == "int8" and m.variant_for("cuda") == "fp32" and m.variant_for("x") == "fp32"
    assert load_model(exported, providers=[CPU]).variant == "int8"
    assert load_model(exported, variant="fp32").variant == "fp32"


def test_cpu_default_must_be_exported(source, tmp_path):
    with pytest.raises(ModelError, match="cpu_default"):
        export_model(source, "duo-cross-encoder", tmp_path / "m", cpu_default="int8", **BUDGETS)
    assert not (tmp_path / "m").exists()


def test_old_manifest_without_default_variants(exported, tmp_path):
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(exported, folder)
    data = json.loads((folder / "manifest.json").read_text())
    del data["default_variants"]
    del data["variants"]["fp32"]["graph"]
    (folder / "manifest.json").write_text(json.dumps(data))
    m = Manifest.read(folder)
    assert m.variant_for("cpu") == "fp32" and m.variants["fp32"].graph is None
    assert load_model(folder).variant == "fp32"


def test_record_measurements(exported, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(exported, folder)
    before = Manifest.read(folder)
    figures = {"ndcg@10_bt": 0.68, "ndcg@10_cost_vs_fp32": {"bt": 0.004}, "queries": 43}
    record_measurements(folder, "int8", "dl19", figures)
    record_measurements(folder, "int8", "cpu_speed", {"speedup_vs_fp32": 2.1}, cpu_default="fp32")
    record_measurements(folder, "int8", "dl19", {**figures, "ndcg@10_bt": 0.69})  # replaces the old record
    m = Manifest.read(folder)
    assert m.variants["int8"].measured == {
        "dl19": {**figures, "ndcg@10_bt": 0.69},
        "cpu_speed": {"speedup_vs_fp32": 2.1},
    }
    assert m.variant_for("cpu") == "fp32"
    assert m.variants["int8"].sha256 == before.variants["int8"].sha256
    assert m.variants["fp32"] == before.variants["fp32"]
    assert load_model(folder, variant="int8").variant == "int8"  # digests still verify
    assert not [p for p in folder.iterdir() if p.name.startswith(".manifest.")]
    with pytest.raises(KeyError):
        record_measurements(folder, "fp16", "dl19", figures)
    with pytest.raises(KeyError):
        record_measurements(folder, "int8", "dl19", figures, cpu_default="fp16")


def test_spinning_setting(exported, monkeypatch):
    monkeypatch.setenv("RERANK_ORT_SPINNING", "0")
    assert spinning_default() is False and spinning_default(True) is True
    model = load_model(exported, variant="fp32")
    assert model.backend.spinning is False
    entries = model.backend._session.get_session_options().get_session_config_entry(
        "session.intra_op.allow_spinning"
    )
    assert entries == "0"
    monkeypatch.setenv("RERANK_ORT_SPINNING", "yes")
    with pytest.raises(ModelError, match="RERANK_ORT_SPINNING"):
        spinning_default()
    monkeypatch.delenv("RERANK_ORT_SPINNING")
    assert spinning_default() is True
