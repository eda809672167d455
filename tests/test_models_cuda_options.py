"""CUDA provider options (device, memory arena cap, arena growth): checked everywhere, applied where the
session runs on CUDA. This machine has no GPU: the CUDA session itself is exercised by bench/gpu_check.sh."""

from __future__ import annotations

import pytest

from rerank.models import ModelError
from rerank.models.runtime import CPU, CudaOptions, OnnxBackend
from rerank.server.config import ConfigError, ServerConfig


def test_provider_options_as_onnxruntime_takes_them() -> None:
    opts = CudaOptions.of({"device_id": 1, "gpu_mem_limit": 2 << 30, "arena_extend_strategy": "kSameAsRequested"})
    assert opts.provider_options() == {
        "device_id": "1", "gpu_mem_limit": str(2 << 30), "arena_extend_strategy": "kSameAsRequested"
    }
    assert CudaOptions.of(None).provider_options() == {"device_id": "0"}


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"device_id": -1}, "device_id must be >= 0"),
        ({"gpu_mem_limit": 0}, "gpu_mem_limit must be >= 1"),
        ({"arena_extend_strategy": "grow"}, "arena_extend_strategy must be one of"),
        ({"device": 0}, "unknown CUDA option"),
    ],
)
def test_bad_options_are_errors(bad, message) -> None:
    with pytest.raises(ModelError, match=message):
        CudaOptions.of(bad)


def test_server_settings_give_the_options_and_are_checked() -> None:
    config = ServerConfig(cuda_device=2, gpu_mem_limit_mb=512, arena_strategy="kSameAsRequested")
    assert config.cuda_options() == {
        "device_id": 2, "gpu_mem_limit": 512 << 20, "arena_extend_strategy": "kSameAsRequested"
    }
    assert ServerConfig().cuda_options() is None
    with pytest.raises(ConfigError, match="arena_extend_strategy"):
        ServerConfig(arena_strategy="grow")


def test_cpu_session_ignores_valid_cuda_options(tmp_path) -> None:
    """A CPU-only session takes the options (checked) and runs on CPU, with no IO binding device."""
    from rerank.models.runtime import _PROBE_GRAPH

    graph = tmp_path / "probe.onnx"
    graph.write_bytes(_PROBE_GRAPH)
    backend = OnnxBackend(graph, output="y", providers=[CPU], cuda={"device_id": 3, "gpu_mem_limit": 1 << 20})
    assert backend.provider == CPU and backend.cuda.device_id == 3
    with pytest.raises(ModelError):
        OnnxBackend(graph, output="y", providers=[CPU], cuda={"arena_extend_strategy": "x"})
