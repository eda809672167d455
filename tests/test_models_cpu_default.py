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
@pytest.mark.timeout(900)  # an LLM export with its CPU-default measurement: minutes on a busy machine
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


@pytest.mark.timeout(900)  # an LLM export with its CPU-default measurement: minutes on a busy machine
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


@pytest.mark.timeout(900)  # an LLM export with its CPU-default measurement: minutes on a busy machine
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


def timed_candidates(monkeypatch, seconds, reference):
    """Candidates that each take ``seconds[name]`` per timed run (a fake clock) and answer ``reference``."""
    current = {}

    def run_for(name):
        def run():
            current["name"] = name
            return np.asarray(reference)
        return run

    state = {"t": 0.0}

    def fake_clock():
        state["t"] += seconds.get(current.get("name"), 0.0) / 2
        return state["t"]

    monkeypatch.setattr(cpu_default.time, "perf_counter", fake_clock)
    return [Candidate(name, "onnx" if name.startswith("onnx") else "torch", "fp32" if name == "onnx-fp32" else None,
                      None if name == "onnx-fp32" else "int8", 0.4, run_for(name)) for name in seconds]


@pytest.mark.parametrize(("torch_seconds", "choice"), [(0.95, "onnx-fp32"), (0.85, "torch-int8")])
def test_choose_keeps_the_exported_graph_unless_another_is_clearly_faster(monkeypatch, torch_seconds, choice):
    """The decision margin: 5 % faster is within timing noise and keeps ONNX fp32; 15 % faster wins."""
    reference = np.array([0.9, 0.2, 0.7, 0.4] * 15)
    cands = timed_candidates(monkeypatch, {"onnx-fp32": 1.0, "torch-int8": torch_seconds}, reference)
    record = choose(cands, reference)
    assert record["choice"] == choice and record["reps"] == cpu_default.TIMING_REPS
    assert record["check_items"] == 60 and record["cpus"] >= 1 and "under_load" in record


@pytest.mark.timeout(900)  # an LLM export with its CPU-default measurement: minutes on a busy machine
def test_export_measures_the_cpu_default_on_enough_prompts_and_records_the_load(tmp_path, monkeypatch, cli):
    """The one test that runs the CPU-default measurement of an export: >= 60 check prompts (the 95 % rule's
    resolution) though parity had 6, interleaved best-of-5 timing on 12 prompts, the load average and CPU
    count recorded; ``models list`` says when the default was measured under load."""
    import json

    monkeypatch.setattr(cpu_default, "cpu_flags", lambda: frozenset({"avx2"}))
    store = tmp_path / "store"
    src = tiny.build_tiny_llama(tmp_path / "src")
    manifest = export_model(src, "prp", store / "llm", parity_seed=0, parity_queries=1, parity_passages=3,
                            **BUDGETS)
    record = manifest.cpu_default
    assert record["check_items"] >= cpu_default.MIN_CHECK_ITEMS and record["items"] == cpu_default.TIMING_ITEMS
    assert record["reps"] == cpu_default.TIMING_REPS and record["cpus"] == os.cpu_count()
    assert isinstance(record["load_average"], float) and isinstance(record["load_average_after"], float)
    assert record["under_load"] == (record["load_average"] > os.cpu_count() / 2)
    for figures in record["candidates"].values():
        assert figures["seconds_per_item"] <= figures["median_seconds_per_item"]
    path = store / "llm" / "manifest.json"
    data = json.loads(path.read_text())
    for loaded in (False, True):
        data["cpu_default"].update(under_load=loaded, load_average=7.5)
        path.write_text(json.dumps(data))
        code, out, err = cli(["models", "list", "--store", str(store)])
        assert code == 0, err
        assert ("measured under load 7.5" in out) is loaded and record["choice"] in out
