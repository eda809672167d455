"""Bad input gives named errors (ValueError subclasses); a failed export writes nothing."""

from __future__ import annotations

import json
import os
import shutil

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from rerank.models import (
    CorruptModelError,
    EmptyTextError,
    MissingTokenizerError,
    ModelError,
    ParityError,
    TextTooLongError,
    UnknownKindError,
    UnknownModelError,
    UnsupportedOperationError,
    export_model,
    load_model,
)
from rerank.models import testing as tiny

BUDGETS = {"max_query_tokens": 12, "max_passage_tokens": 20}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    src = tiny.build_tiny_bert_classifier(root / "src")
    export_model(src, "duo-cross-encoder", root / "model", parity_seed=0, **BUDGETS)
    return src, root / "model"


@pytest.fixture()
def copy(exported, tmp_path):
    _, folder = exported
    dst = tmp_path / "copy"
    shutil.copytree(folder, dst)
    return dst


@pytest.fixture(scope="module")
def model(exported):
    return load_model(exported[1], max_chars=100)


def test_error_hierarchy():
    for cls in (
        EmptyTextError,
        TextTooLongError,
        UnknownModelError,
        UnknownKindError,
        CorruptModelError,
        MissingTokenizerError,
        UnsupportedOperationError,
    ):
        assert issubclass(cls, ValueError) and issubclass(cls, ModelError)
    assert issubclass(MissingTokenizerError, CorruptModelError)


@pytest.mark.parametrize(
    "query,pair,what",
    [
        ("", ("a", "b"), "query"),
        ("   ", ("a", "b"), "query"),
        ("q", ("", "b"), "passage a"),
        ("q", ("a", " \n\t"), "passage b"),
    ],
)
def test_empty_text(model, query, pair, what):
    with pytest.raises(EmptyTextError, match=what):
        model.compare(query, [pair])


def test_empty_text_in_batch_names_the_item(model):
    with pytest.raises(EmptyTextError, match="passage b of item 1"):
        model.compare_batch([("q", "a", "b"), ("q", "a", "")])


def test_text_too_long(model):
    with pytest.raises(TextTooLongError, match="max_chars"):
        model.compare("q", [("x" * 101, "b")])
    with pytest.raises(TextTooLongError, match="query"):
        model.compare("q" * 101, [("a", "b")])
    assert model.compare("q", [("x" * 100, "b")]).shape == (1,)


def test_not_a_string(model):
    with pytest.raises(ModelError, match="must be a string"):
        model.compare("q", [(None, "b")])


def test_unknown_model_name(tmp_path):
    with pytest.raises(UnknownModelError, match="no-such-model"):
        load_model("no-such-model", store=tmp_path)
    with pytest.raises(UnknownModelError):
        load_model(str(tmp_path / "missing" / "folder"), store=tmp_path)
    with pytest.raises(UnknownModelError):
        export_model("no-such-model", "duo-t5", tmp_path / "out")


def test_unknown_kind(exported, tmp_path):
    src, _ = exported
    with pytest.raises(UnknownKindError, match="duo-bert"):
        export_model(src, "duo-bert", tmp_path / "out")
    with pytest.raises(UnknownKindError):
        load_model(src, backend="torch", kind="duo-bert")
    assert not (tmp_path / "out").exists()


def test_unknown_backend(exported):
    with pytest.raises(ModelError, match="backend"):
        load_model(exported[1], backend="tensorrt")


def test_missing_model_onnx(copy):
    (copy / "model.onnx").unlink()
    with pytest.raises(CorruptModelError, match=r"model\.onnx"):
        load_model(copy)


def test_damaged_model_onnx(copy):
    (copy / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(CorruptModelError, match="sha256"):
        load_model(copy)
    with pytest.raises(CorruptModelError, match="cannot load"):
        load_model(copy, verify=False)


def test_missing_manifest(copy):
    (copy / "manifest.json").unlink()
    with pytest.raises(CorruptModelError, match="manifest"):
        load_model(copy)


@pytest.mark.parametrize("content", ["{not json", json.dumps({"kind": "duo-t5"}), "[]"])
def test_bad_manifest(copy, content):
    (copy / "manifest.json").write_text(content)
    with pytest.raises(CorruptModelError, match="manifest"):
        load_model(copy)


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(CorruptModelError):
        load_model(tmp_path / "junk")


def test_missing_tokenizer_in_model(copy):
    (copy / "tokenizer.json").unlink()
    with pytest.raises(MissingTokenizerError, match="tokenizer"):
        load_model(copy)


def test_unreadable_tokenizer_in_model(copy):
    (copy / "tokenizer.json").write_text("{broken")
    with pytest.raises(MissingTokenizerError, match="tokenizer"):
        load_model(copy)


def test_missing_tokenizer_in_source(exported, tmp_path):
    src, _ = exported
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(src / f, bare / f)
    with pytest.raises(MissingTokenizerError):
        export_model(bare, "duo-cross-encoder", tmp_path / "out", **BUDGETS)
    assert not (tmp_path / "out").exists()


def test_embed_on_cross_encoder(model):
    with pytest.raises(UnsupportedOperationError, match="bi-encoder"):
        model.embed(["text"])


def test_budget_larger_than_model(exported, tmp_path):
    src, _ = exported
    with pytest.raises(ModelError, match="positions"):
        export_model(src, "duo-cross-encoder", tmp_path / "out", max_query_tokens=100, max_passage_tokens=300)
    assert not (tmp_path / "out").exists()


def test_parity_failure_writes_nothing(exported, tmp_path):
    src, _ = exported
    out = tmp_path / "store" / "model"
    with pytest.raises(ParityError, match="parity"):
        export_model(src, "duo-cross-encoder", out, tolerance=-1.0, **BUDGETS)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temporary folder left behind


def test_export_refuses_to_overwrite(exported):
    src, folder = exported
    with pytest.raises(FileExistsError):
        export_model(src, "duo-cross-encoder", folder, **BUDGETS)


def test_unknown_export_option(exported, tmp_path):
    src, _ = exported
    with pytest.raises(ModelError, match="temperature"):
        export_model(src, "duo-cross-encoder", tmp_path / "out", temperature=0.1, **BUDGETS)


def test_empty_request_is_fine(model):
    result = model.compare_batch([])
    assert result.p.shape == (0,) and result.stats.items == 0 and result.stats.batches == 0
    assert model.compare("q", []).shape == (0,)


def test_cuda_request_falls_back_to_cpu(exported):
    import onnxruntime

    m = load_model(exported[1], providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    gpu = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    expected = "CUDAExecutionProvider" if gpu else "CPUExecutionProvider"
    assert m.provider == expected
    assert m.compare("q", [("a", "b")]).shape == (1,)


@pytest.mark.parametrize("kind", ["mono-cross-encoder", "duo-cross-encoder"])
def test_llama_as_cross_encoder_names_the_random_head(tmp_path, kind):
    """A chat LLM has no classification head: the loader would initialise ``score.weight`` at random and the
    parity check would compare that random head with itself. The export fails, naming the weight, and writes
    nothing."""
    src = tiny.build_tiny_llama(tmp_path / "llama")
    with pytest.raises(ModelError, match=r"no trained weights for score\.weight"):
        export_model(src, kind, tmp_path / "out", parity_queries=1, parity_passages=2)
    assert not (tmp_path / "out").exists()


def test_encoder_without_head_names_the_missing_weights(tmp_path):
    """An encoder checkpoint (MiniLM, no classifier) exported as a cross-encoder: the head is missing."""
    with pytest.raises(ModelError, match=r"classifier\.bias, classifier\.weight"):
        export_model("minilm", "mono-cross-encoder", tmp_path / "out", parity_queries=1, parity_passages=2)
    assert not (tmp_path / "out").exists()


def test_wrong_kind_names_the_architecture_without_architectures_field(tmp_path):
    """A T5 folder whose config.json has no ``architectures`` in a classifier kind: the message names the
    class transformers would build, not ``(?)``."""
    import json

    src = tiny.build_tiny_t5(tmp_path / "t5")
    config = json.loads((src / "config.json").read_text())
    config.pop("architectures", None)
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"T5ForConditionalGeneration") as info:
        export_model(src, "mono-cross-encoder", tmp_path / "out")
    assert "(?)" not in str(info.value)


class StageLog:
    """A progress sink that keeps the export's stage names in order."""

    def __init__(self) -> None:
        self.stages: list[str] = []

    def stage(self, text: str) -> None:
        self.stages.append(text)


def test_failing_variants_are_left_out_and_checked_before_timing(tmp_path):
    """fp16 and int8 fail their checks (bounds below zero): the export still writes fp32, records both
    failures, and runs every check before it times the CPU backends."""
    src = tiny.build_tiny_t5(tmp_path / "t5")
    log = StageLog()
    manifest = export_model(src, "duo-t5", tmp_path / "out", fp16=True, fp16_tolerance=-1.0,
                            int8_tolerance=-1.0, parity_queries=1, parity_passages=3, progress=log)
    assert set(manifest.variants) == {"fp32"} and set(manifest.rejected_variants) == {"fp16", "int8"}
    assert "ParityError" in manifest.rejected_variants["fp16"]["reason"]
    assert manifest.default_variants == {"cpu": manifest.default_variants["cpu"], "cuda": "fp32"}
    assert manifest.cpu_default["candidates"]["onnx-int8"]["eligible"] is False
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert "model.onnx" in files and "model.fp16.onnx" not in files and "model.int8.onnx" not in files
    timing = log.stages.index("measure the CPU default")
    assert max(i for i, s in enumerate(log.stages) if s.startswith("parity")) < timing
    from rerank.models.manifest import Manifest

    assert Manifest.read(tmp_path / "out").rejected_variants.keys() == {"fp16", "int8"}
    assert load_model(tmp_path / "out", backend="onnx", variant="fp32").compare_batch([("q", "a", "b")]).p.shape == (1,)


def test_cli_cpu_default_fp32_skips_the_measurement(tmp_path, cli):
    src = tiny.build_tiny_t5(tmp_path / "t5")
    code, out, _err = cli(["models", "export", "--model", str(src), "--kind", "duo-t5", "--out",
                           str(tmp_path / "out"), "--cpu-default", "fp32"])
    assert code == 0, out
    import json

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["default_variants"]["cpu"] == "fp32" and "cpu_default" not in manifest
