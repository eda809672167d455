"""CPU default of the LLM kinds (models/cpu_default.py): measured at export, recorded, followed at load.

Tiny randomly initialised replicas; the speed figures of the real SmolLM2 are in
bench/results/llm_cpu.md. These tests check the rule and the plumbing, not timings.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from rerank.models import cpu_default, export_model, load_model
from rerank.models import testing as tiny
from rerank.models.cpu_default import MIN_DECISION_AGREEMENT, Candidate, choose
from rerank.models.manifest import Manifest
from rerank.models.registry import KINDS, kind_class

BUDGETS = {"max_query_tokens": 12, "max_passage_tokens": 20}
ITEMS = [("how do plants make food", "photosynthesis sunlight sugar water", "stock market shares fell"),
         ("coffee in the morning", "football team goal match", "hot coffee cup brew")]


def fixed(p, name, tolerance=0.5, backend="onnx"):
    return Candidate(name, backend, "fp32" if backend == "onnx" else None, "bfloat16" if backend == "torch" else None,
                     tolerance, lambda: np.asarray(p, dtype=float))


def test_choose_takes_the_fastest_candidate_that_keeps_the_decisions(monkeypatch):
    reference = np.array([0.9, 0.2, 0.7, 0.4] * 5)
    flipped = reference.copy()
    flipped[:2] = 1 - flipped[:2]  # 90% agreement: below the 95% rule
    seconds = {"onnx-fp32": 3.0, "onnx-int8": 1.0, "torch-bf16": 2.0}
    current = {}

    def run_for(name, p):
        def run():
            current["name"] = name
            return np.asarray(p)
        return run

    cands = [Candidate("onnx-fp32", "onnx", "fp32", None, 1e-3, run_for("onnx-fp32", reference)),
             Candidate("onnx-int8", "onnx", "int8", None, 0.35, run_for("onnx-int8", flipped)),
             Candidate("torch-bf16", "torch", None, "bfloat16", 0.05, run_for("torch-bf16", reference + 0.01))]
    state = {"t": 0.0}

    def fake_clock():  # each run takes its candidate's seconds
        state["t"] += seconds.get(current.get("name"), 0.0) / 2
        return state["t"]

    monkeypatch.setattr(cpu_default.time, "perf_counter", fake_clock)
    record = choose(cands, reference, reps=3)
    assert record["candidates"]["onnx-int8"]["eligible"] is False
    assert record["candidates"]["onnx-int8"]["decision_agreement"] < MIN_DECISION_AGREEMENT
    assert record["choice"] == "torch-bf16" and record["backend"] == "torch" and record["dtype"] == "bfloat16"


def test_choose_rejects_answers_outside_the_tolerance():
    reference = np.array([0.9, 0.2, 0.7, 0.4])
    record = choose([fixed(reference, "onnx-fp32", 1e-3), fixed(reference + 0.08, "torch-bf16", 0.05, "torch")],
                    reference, reps=1)
    assert record["candidates"]["torch-bf16"]["eligible"] is False
    assert record["choice"] == "onnx-fp32"


def test_every_prompt_kind_gets_a_measured_default_and_encoders_do_not():
    prompt_kinds = {k for k in KINDS if kind_class(k).measured_cpu_default}
    assert {"prp", "duo-t5"} <= prompt_kinds
    assert "bi-encoder" not in prompt_kinds and "duo-cross-encoder" not in prompt_kinds


@pytest.mark.parametrize("bf16_units", [False, True])
def test_prp_export_records_the_choice_and_load_follows_it(tmp_path, monkeypatch, bf16_units):
    flags = frozenset({"avx2", "avx512_bf16"} if bf16_units else {"avx2"})
    monkeypatch.setattr(cpu_default, "cpu_flags", lambda: flags)
    src = tiny.build_tiny_llama(tmp_path / "src")
    # no explicit quantize: the measured default tries int8 and keeps it only if it passes parity
    manifest = export_model(src, "prp", tmp_path / "model", parity_seed=0, **BUDGETS)
    record = Manifest.read(tmp_path / "model").cpu_default
    assert record == manifest.cpu_default and record["choice"] in record["candidates"]
    assert ("torch-bf16" in record["candidates"]) is bf16_units
    assert {"onnx-fp32", "onnx-int8", "torch-fp32", "torch-int8"} <= set(record["candidates"])
    chosen = record["candidates"][record["choice"]]
    assert chosen["eligible"] and chosen["decision_agreement"] >= MIN_DECISION_AGREEMENT
    if record["backend"] == "onnx":
        assert manifest.default_variants["cpu"] == record["variant"]
    model = load_model(tmp_path / "model")
    expected = "torch" if record["backend"] == "torch" else "onnx"
    assert (model.variant == "torch") is (expected == "torch")
    assert len(model.compare_batch(ITEMS).p) == 2


def test_a_bf16_record_is_not_followed_on_a_cpu_without_bf16_units(monkeypatch):
    record = {"choice": "torch-bf16", "backend": "torch", "dtype": "bfloat16"}
    monkeypatch.setattr(cpu_default, "cpu_flags", lambda: frozenset({"avx2"}))
    assert cpu_default.backend_for_load(record) == ("onnx", {})
    monkeypatch.setattr(cpu_default, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert cpu_default.backend_for_load(record) == ("torch", {"dtype": "bfloat16"})
    assert cpu_default.backend_for_load({"choice": "onnx-int8", "backend": "onnx", "variant": "int8"}) == ("onnx", {})


def test_bi_encoder_export_has_no_measured_default(tmp_path):
    src = tiny.build_tiny_bert_classifier(tmp_path / "src")
    manifest = export_model(src, "duo-cross-encoder", tmp_path / "model", parity_seed=0, **BUDGETS)
    assert manifest.cpu_default == {}
    assert "cpu_default" not in (tmp_path / "model" / "manifest.json").read_text()


def test_llm_export_tries_int8_as_a_candidate_and_keeps_it_only_when_it_passes_parity(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_default, "cpu_flags", lambda: frozenset({"avx2"}))
    src = tiny.build_tiny_llama(tmp_path / "src")
    manifest = export_model(src, "prp", tmp_path / "model", parity_seed=0, **BUDGETS)  # no quantize asked
    int8 = manifest.cpu_default["candidates"]["onnx-int8"]
    if "int8" in manifest.variants:
        assert manifest.variants["int8"].parity["passed"] and "parity_failed" not in int8
    else:
        assert int8["eligible"] is False and "parity failed" in int8["parity_failed"]
        assert not (tmp_path / "model" / "model.int8.onnx").exists()
        assert manifest.cpu_default["choice"] != "onnx-int8"


def test_models_measure_records_a_new_choice_and_refuses_what_it_cannot_measure(tmp_path, monkeypatch, cli):
    monkeypatch.setattr(cpu_default, "cpu_flags", lambda: frozenset({"avx2"}))
    store = tmp_path / "store"
    src = tiny.build_tiny_llama(tmp_path / "src")
    export_model(src, "prp", store / "llm", parity_seed=0, parity_queries=1, parity_passages=3, **BUDGETS)
    before = Manifest.read(store / "llm").cpu_default["measured"]
    code, out, err = cli(["models", "measure", "llm", "--store", str(store)])
    assert code == 0, err
    record = Manifest.read(store / "llm").cpu_default
    assert f"llm: CPU default {record['choice']}" in out and "torch-int8:" in out and "onnx-fp32:" in out
    assert record["measured"] >= before and record["choice"] in record["candidates"]
    code, out, err = cli(["models", "measure", "nope", "--store", str(store)])
    assert code == 1 and "no exported model 'nope'" in err and err.count("\n") == 1
    enc = tiny.build_tiny_bert_classifier(tmp_path / "enc")
    export_model(enc, "duo-cross-encoder", store / "enc", parity_seed=0, **BUDGETS)
    code, out, err = cli(["models", "measure", "enc", "--store", str(store)])
    assert code == 1 and "no measured CPU default" in err
