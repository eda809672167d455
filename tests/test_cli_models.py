"""`rerank models export|list|ensure` (and the old `rerank export`), in-process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rerank.models.testing import build_tiny_bert_classifier


@pytest.fixture
def run(cli):
    """``run(args, home)``: ``rerank ARGS`` in-process with ``RERANK_HOME=home``, answered like a subprocess."""

    def go(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
        code, out, err = cli(args, home=home)
        return subprocess.CompletedProcess(args, code, out, err)

    return go


def test_export_writes_a_parity_checked_model_and_list_shows_it(tmp_path: Path, run) -> None:
    src = build_tiny_bert_classifier(tmp_path / "ckpt")
    out = tmp_path / "home" / "models" / "tiny-duo"
    args = ["models", "export", "--model", str(src), "--kind", "duo-cross-encoder", "--name", "tiny-duo"]
    proc = run(args, tmp_path / "home")  # into the store by default
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["out"] == str(out)
    assert record["kind"] == "duo-cross-encoder"
    parity = record["parity"]["fp32"]
    assert parity["passed"] and parity["order_agrees"] and parity["max_abs_diff_p"] < 1e-3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "duo-cross-encoder" and (out / "model.onnx").is_file()

    listed = run(["models", "list", "--json"], tmp_path / "home")
    assert listed.returncode == 0, listed.stderr
    infos = {r["name"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert infos["tiny-duo"]["kind"] == "duo-cross-encoder" and infos["tiny-duo"]["exported"]
    assert infos["tiny-duo"]["provider"] == "CPUExecutionProvider"
    assert "minilm" in infos  # embedded models are listed even before they are built
    table = run(["models", "list"], tmp_path / "home")
    assert table.stdout.splitlines()[0].split()[:3] == ["name", "kind", "provider"]


def test_export_errors_are_one_line(tmp_path: Path, cli) -> None:
    home = tmp_path / "home"
    out = str(tmp_path / "o")
    code, _, err = cli(["models", "export", "--model", str(tmp_path / "nope"), "--kind", "duo-t5", "--out", out],
                       home=home)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "export failed" in err
    src = build_tiny_bert_classifier(tmp_path / "ckpt")
    code, _, err = cli(["models", "export", "--model", str(src), "--kind", "triple-encoder", "--out", out],
                       home=home)
    assert code == 2 and "unknown --kind 'triple-encoder'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    code, _, err = cli(["models", "ensure", "gpt-9"], home=home)
    assert code == 2 and "unknown embedded model 'gpt-9'" in err


def test_models_ensure_is_a_no_op_when_exported(minilm_store, cli) -> None:
    graph = minilm_store.path("minilm") / "model.onnx"
    before = graph.stat().st_mtime_ns
    code, out, err = cli(["models", "ensure", "minilm", "--store", str(minilm_store.root), "--quiet"])
    assert code == 0, err
    assert out.startswith("minilm: ready in ") and err == ""  # --quiet: no log lines
    assert graph.stat().st_mtime_ns == before  # already exported: nothing rewritten


@pytest.mark.timeout(1200)  # trains a sentencepiece model and runs two exports
def test_export_castorini_duot5_layout_and_tokenizer_folder(tmp_path: Path, run) -> None:
    """A folder laid out as castorini/duot5-base-msmarco (spiece.model, pytorch_model.bin, no
    tokenizer.json) exports from the command line; ``--tokenizer`` reads the tokenizer elsewhere."""
    from rerank.models.testing import build_castorini_t5

    src = build_castorini_t5(tmp_path / "duot5-base-msmarco")
    tok = tmp_path / "t5-base"
    tok.mkdir()
    for name in ("spiece.model", "special_tokens_map.json", "tokenizer_config.json"):
        (tok / name).write_bytes((src / name).read_bytes())
    (src / "spiece.model").unlink()  # only the --tokenizer folder has it now
    out = tmp_path / "out"
    no_tok = run(["models", "export", "--model", str(src), "--kind", "duo-t5", "--out", str(out)], tmp_path)
    assert no_tok.returncode == 1 and "no tokenizer files" in no_tok.stderr
    assert len(no_tok.stderr.strip().splitlines()) == 1 and not out.exists()
    args = ["models", "export", "--model", str(src), "--kind", "duo-t5", "--out", str(out), "--tokenizer", str(tok),
            "--truncation", "reference"]
    proc = run(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["parity"]["fp32"]["passed"]
    options = json.loads((out / "manifest.json").read_text())["options"]
    assert options["truncation"] == "reference" and options["max_input_tokens"] == 512


@pytest.mark.timeout(1200)  # five command-line runs, each importing transformers
def test_export_architecture_and_option_errors_are_one_line(tmp_path: Path, run) -> None:
    src = build_tiny_bert_classifier(tmp_path / "ckpt")
    cases = {
        ("--kind", "prp"): "does not support model type 'bert'",
        ("--kind", "duo-t5"): "encoder-decoder LMs (T5, mT5, Flan-T5, UL2)",
        ("--kind", "duo-cross-encoder", "--chat-template"): "does not take the option(s) chat_template",
        ("--kind", "duo-cross-encoder", "--segments", "3"): "3-segment input needs type_vocab_size >= 3",
        ("--kind", "mono-cross-encoder", "--truncation", "reference", "--max-input-tokens", "1"): "must be",
    }
    for extra, message in cases.items():
        proc = run(["models", "export", "--model", str(src), "--out", str(tmp_path / "o"), *extra], tmp_path)
        assert proc.returncode == 1, (extra, proc.stderr)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (extra, proc.stderr)
        assert not (tmp_path / "o").exists()
