"""Backends: ONNX Runtime (serving) and torch eager (parity reference), both running the graph contract.

Provider choice (ONNX Runtime), made once per session at load:
1. ``CUDAExecutionProvider`` when ``onnxruntime.get_available_providers()`` lists it *and* a session on it
   really comes up with CUDA first in ``session.get_providers()`` and survives a warm-up run;
2. otherwise ``CPUExecutionProvider`` with ``intra_op_num_threads`` = the physical cores this process may
   use (``RERANK_ORT_THREADS`` or ``intra_op_threads=`` override it), one inter-op thread. Intra-op threads
   spin while waiting for work (ONNX Runtime's default) unless ``RERANK_ORT_SPINNING=0`` or
   ``spinning=False``: spinning buys little per call on a busy machine and burns a core between requests.
The chosen provider is logged and exposed as ``backend.provider`` (read back from the session).

On CUDA, ``run`` binds inputs and outputs with ``session.io_binding()`` (``io_binding=None`` = on CUDA only):
inputs go to the device as ``OrtValue``s and the output stays there until one copy back, instead of the
plain ``session.run`` hand-offs. One binding per call (an ``IOBinding`` is not thread-safe). The same path is
exercised on CPU by the tests (``io_binding=True``); on a GPU it is run by ``bench/gpu_check.sh``.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorruptModelError, ModelError

log = logging.getLogger("rerank.models")

# ONNX Runtime >= 1.29 sends usage telemetry from Linux too (1DS: a DNS lookup of mobile.events.data.microsoft.com
# and an upload when a session is created); a re-ranking service talks to nobody it was not told to. Read once,
# before ONNX Runtime initialises: ORT_DISABLE_TELEMETRY=0 set by the user keeps it on (docs/models.md).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

# A 65-byte ONNX graph (y = Relu(x), opset 13) used to probe whether the CUDA provider really works.
_PROBE_GRAPH = base64.b64decode(
    "CAg6NwoMCgF4EgF5IgRSZWx1EgVwcm9iZVoPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEA0="
)


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo``), for benchmark reports."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads counted once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        base = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(
                (
                    base.joinpath("physical_package_id").read_text().strip(),
                    base.joinpath("core_id").read_text().strip(),
                )
            )
        except OSError:
            cores.add(("?", str(cpu)))
    return max(1, len(cores))


def cpu_threads(requested: int | None = None) -> int:
    if requested:
        return int(requested)
    env = os.environ.get("RERANK_ORT_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ModelError(f"RERANK_ORT_THREADS must be an integer, got {env!r}") from None
    return physical_cores()


@functools.lru_cache(maxsize=1)
def cuda_works() -> bool:
    """True when ONNX Runtime lists CUDA and a probe session really runs on it (cached per process)."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return False
    try:
        sess = ort.InferenceSession(_PROBE_GRAPH, providers=[CUDA, CPU])
        if sess.get_providers()[0] != CUDA:
            return False
        sess.run(None, {"x": np.array([-1.0], dtype=np.float32)})
        return True
    except Exception as exc:  # driver or library missing: ORT raises plain RuntimeError/Fail
        log.warning("CUDAExecutionProvider is listed but does not work (%s); using CPU", exc)
        return False


def preferred_provider() -> str:
    return CUDA if cuda_works() else CPU


def spinning_default(requested: bool | None = None) -> bool:
    if requested is not None:
        return bool(requested)
    env = os.environ.get("RERANK_ORT_SPINNING")
    if env is None or env == "":
        return True
    if env not in ("0", "1"):
        raise ModelError(f"RERANK_ORT_SPINNING must be 0 or 1, got {env!r}")
    return env == "1"


def _session_options(threads: int | None, spinning: bool | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = cpu_threads(threads)
    opts.log_severity_level = 3
    spin = "1" if spinning_default(spinning) else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    return opts


ARENA_STRATEGIES = ("kNextPowerOfTwo", "kSameAsRequested")


@dataclass(frozen=True)
class CudaOptions:
    """ONNX Runtime CUDA provider options: which GPU (``device_id``), a cap on the memory arena in bytes
    (``gpu_mem_limit``; None = the provider's default, no cap) and how the arena grows
    (``arena_extend_strategy``: ``kNextPowerOfTwo``, the provider's default, or ``kSameAsRequested``, which
    wastes less memory when several models share a GPU)."""

    device_id: int = 0
    gpu_mem_limit: int | None = None
    arena_extend_strategy: str | None = None

    def __post_init__(self) -> None:
        if int(self.device_id) < 0:
            raise ModelError(f"cuda device_id must be >= 0, got {self.device_id}")
        if self.gpu_mem_limit is not None and int(self.gpu_mem_limit) < 1:
            raise ModelError(f"gpu_mem_limit must be >= 1 byte, got {self.gpu_mem_limit}")
        if self.arena_extend_strategy is not None and self.arena_extend_strategy not in ARENA_STRATEGIES:
            raise ModelError(
                f"arena_extend_strategy must be one of {', '.join(ARENA_STRATEGIES)}, "
                f"got {self.arena_extend_strategy!r}"
            )

    @classmethod
    def of(cls, value: CudaOptions | Mapping[str, Any] | None) -> CudaOptions:
        if value is None:
            return cls()
        if isinstance(value, CudaOptions):
            return value
        unknown = set(value) - {"device_id", "gpu_mem_limit", "arena_extend_strategy"}
        if unknown:
            raise ModelError(
                f"unknown CUDA option(s) {sorted(unknown)}; known: device_id, gpu_mem_limit, arena_extend_strategy"
            )
        return cls(**value)

    def provider_options(self) -> dict[str, str]:
        """The options as ONNX Runtime takes them (strings)."""
        out = {"device_id": str(int(self.device_id))}
        if self.gpu_mem_limit is not None:
            out["gpu_mem_limit"] = str(int(self.gpu_mem_limit))
        if self.arena_extend_strategy is not None:
            out["arena_extend_strategy"] = self.arena_extend_strategy
        return out


def _warmup_feeds(inputs: Sequence[str]) -> dict[str, np.ndarray]:
    feeds = {name: np.ones((1, 4), dtype=np.int64) for name in inputs}
    if "token_type_ids" in feeds:
        feeds["token_type_ids"][:] = 0
    return feeds


class OnnxBackend:
    """ONNX Runtime session. ``InferenceSession.run`` is thread-safe; the object holds no request state."""

    name = "onnx"

    def __init__(
        self,
        path: str | Path,
        *,
        output: str,
        providers: Sequence[str] | None = None,
        intra_op_threads: int | None = None,
        spinning: bool | None = None,
        io_binding: bool | None = None,
        cuda: CudaOptions | Mapping[str, Any] | None = None,
    ) -> None:
        import onnxruntime as ort

        self.cuda = CudaOptions.of(cuda)

        self._ort = ort
        self.path = Path(path)
        if not self.path.is_file():
            raise CorruptModelError(f"model graph missing: {self.path}")
        available = set(ort.get_available_providers())
        wanted = list(providers) if providers else ([CUDA, CPU] if cuda_works() else [CPU])
        missing = [p for p in wanted if p not in available]
        if missing:
            log.warning("providers %s are not available here (%s); skipping them", missing, sorted(available))
            wanted = [p for p in wanted if p in available] or [CPU]
        session = None
        if wanted[0] == CUDA:
            try:
                with_options = [(p, self.cuda.provider_options()) if p == CUDA else p for p in wanted]
                session = ort.InferenceSession(
                    str(self.path), _session_options(intra_op_threads, spinning), providers=with_options
                )
                if session.get_providers()[0] != CUDA:
                    raise RuntimeError(f"session came up on {session.get_providers()}")
                names = [i.name for i in session.get_inputs()]
                session.run([output], _warmup_feeds(names))
            except Exception as exc:
                if _is_corrupt(exc):
                    raise CorruptModelError(f"cannot load {self.path}: {exc}") from exc
                log.warning("CUDA session for %s failed (%s); falling back to CPU", self.path, exc)
                session = None
        if session is None:
            try:
                session = ort.InferenceSession(
                    str(self.path), _session_options(intra_op_threads, spinning), providers=[CPU]
                )
            except Exception as exc:
                raise CorruptModelError(f"cannot load {self.path}: {exc}") from exc
        self._session = session
        self.provider = session.get_providers()[0]
        self.inputs = tuple(i.name for i in session.get_inputs())
        outputs = [o.name for o in session.get_outputs()]
        if output not in outputs:
            raise CorruptModelError(f"{self.path} has outputs {outputs}, the manifest names {output!r}")
        self.output = output
        self.threads = session.get_session_options().intra_op_num_threads
        self.spinning = spinning_default(spinning)
        self.io_binding = self.provider == CUDA if io_binding is None else bool(io_binding)
        self._device = "cuda" if self.provider == CUDA else "cpu"
        self._device_id = int(self.cuda.device_id) if self.provider == CUDA else 0
        log.info(
            "loaded %s on %s (intra-op threads %s%s)",
            self.path, self.provider, self.threads, ", IO binding" if self.io_binding else "",
        )  # fmt: skip

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        if not self.io_binding:
            return self._session.run([self.output], {k: feeds[k] for k in self.inputs})[0]
        binding = self._session.io_binding()
        for name in self.inputs:
            value = self._ort.OrtValue.ortvalue_from_numpy(
                np.ascontiguousarray(feeds[name]), self._device, self._device_id
            )
            binding.bind_ortvalue_input(name, value)
        binding.bind_output(self.output, self._device, self._device_id)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]


def _is_corrupt(exc: Exception) -> bool:
    text = str(exc).lower()
    return "protobuf" in text or "invalid_graph" in text or "no such file" in text


class TorchBackend:
    """Torch eager run of the wrapper module (the parity reference; also bf16 on CPU for benchmarks).

    Thread-safe: ``forward`` under ``torch.inference_mode`` (thread-local) on an ``eval()`` module keeps
    no state. The process-wide ``torch.set_num_threads`` is left to the caller.
    """

    name = "torch"

    def __init__(self, module: Any, inputs: Sequence[str], *, device: str = "cpu") -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.inputs = tuple(inputs)
        dtype = next(iter(module.parameters())).dtype
        quantized = any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in module.modules())
        self.dtype = "int8" if quantized else str(dtype).replace("torch.", "")
        self.provider = f"torch:{self.device.type}:{self.dtype}"

    def _tensors(self, feeds: Mapping[str, np.ndarray], names: Sequence[str]) -> list[Any]:
        return [self._torch.from_numpy(np.ascontiguousarray(feeds[k])).to(self.device) for k in names]

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        with self._torch.inference_mode():
            return self.module(*self._tensors(feeds, self.inputs)).float().cpu().numpy()

    @property
    def shares_prefixes(self) -> bool:
        """Whether the module runs a shared prefix once for several suffixes (models/prefix.py)."""
        return bool(getattr(self.module, "shares_prefixes", False))

    def prefix_state(self, prefix: Sequence[int]) -> Any:
        """The module's cached keys and values for ``prefix`` (one sequence)."""
        torch = self._torch
        with torch.inference_mode():
            ids = torch.tensor([list(prefix)], dtype=torch.long, device=self.device)
            return self.module.prefix_cache(ids)

    def run_suffixes(self, state: Any, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """The outputs of right-padded suffixes (``input_ids``, ``attention_mask``) after the prefix."""
        with self._torch.inference_mode():
            ids, mask = self._tensors(feeds, ("input_ids", "attention_mask"))
            return self.module.forward_suffixes(state, ids, mask).float().cpu().numpy()
