"""CPU default of the LLM kinds: the fastest backend measured on this machine that keeps the fp32 decisions.

A pairwise LLM (any :class:`~.prompt.PromptKind`: causal ``prp``, seq2seq ``duo-t5``, and every prompt kind
added later; :attr:`~.base.Kind.measured_cpu_default`) is expensive on a CPU, and which backend is fastest
depends on the CPU: torch bfloat16 runs 2.5x fp32 where the CPU has bf16 units (``avx512_bf16``,
``amx_bf16``) and is emulated, slower than fp32, where it has none; dynamic int8 ONNX gains where int8
dot products are fast. So the export measures, on this machine and on its own parity items (all ordered pairs of a few
passages per query, the shape of a ranking request):

- ``onnx-fp32`` (the exported graph), ``onnx-int8`` (int8 weights, models/quantize.py; tried at every
  measured export and a candidate when it passes its parity check),
- ``torch-fp32`` where the model runs shared prompt prefixes once (causal models, models/prefix.py: the
  pairs of a request that share passage a share its keys and values; exact),
- ``torch-int8`` (dynamic int8 weights of every Linear, fbgemm kernels; with shared prefixes where the
  model has them),
- ``torch-bf16`` only when the CPU has bf16 units,

and keeps as the CPU default the fastest candidate whose decisions (p > 1/2) agree with the torch fp32
reference on at least :data:`MIN_DECISION_AGREEMENT` of at least :data:`MIN_CHECK_ITEMS` check prompts (so
one flip moves the agreement by under 2 %, finer than the 5 % the rule allows) and whose max |dp| is within
its tolerance. Robust to load: the candidates are timed interleaved (each round in a rotated order),
:data:`TIMING_REPS` times on the same :data:`TIMING_ITEMS` prompts, and each keeps its best round (the run
least disturbed by other processes); the first candidate (ONNX fp32, the exported graph) is replaced only by
one at least :data:`DECISION_MARGIN` faster. The 1-minute load average before and after, and the CPU count,
are recorded; a measurement that started with a load average above half the CPUs is marked
``under_load`` (``rerank models list`` says so; ``rerank models measure`` measures again). The choice, the
figures and the CPU they were measured on go into the manifest (``cpu_default``);
``load_model(backend=None)`` follows it on a CPU, and falls back to ONNX when the
record asks for bf16 and the loading machine has no bf16 units (a store copied to another machine).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .runtime import cpu_name

#: Decisions (p > 1/2) a candidate must share with the torch fp32 reference.
MIN_DECISION_AGREEMENT = 0.95
#: Largest |p - p_fp32| a bf16 candidate may show (bf16 keeps 8 bits of mantissa; measured max 0.012).
BF16_TOLERANCE = 0.05
#: CPU flags that mean native bf16 arithmetic.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: Timed rounds per candidate (interleaved); each candidate keeps its fastest round.
TIMING_REPS = 5
#: Prompts per timed round (the first parity query's pairs: the shape of a ranking request).
TIMING_ITEMS = 12
#: Check prompts the decision rule needs at least (one flip moves the agreement by 1/60 < 2 %).
MIN_CHECK_ITEMS = 60
#: A candidate replaces ONNX fp32 only when it is at least this much faster (timing noise is smaller).
DECISION_MARGIN = 0.10


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def under_load(record: Mapping[str, Any]) -> bool:
    """Whether a ``cpu_default`` record was measured while other work kept the CPUs busy."""
    return bool(record.get("under_load"))


def cpu_flags() -> frozenset[str]:
    """The flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_bf16_units(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU computes in bfloat16 natively (otherwise torch emulates it, slower than fp32)."""
    return bool(BF16_FLAGS & (cpu_flags() if flags is None else flags))


@dataclass(frozen=True)
class Candidate:
    """One way to run the model on a CPU: ``backend`` (``onnx``/``torch``), ``variant`` or ``dtype``."""

    name: str
    backend: str
    variant: str | None  # ONNX graph variant
    dtype: str | None  # torch dtype
    tolerance: float
    run: Callable[[], np.ndarray]  # p for the timing items
    check: Callable[[], np.ndarray] | None = None  # p for the check items (None: the timing items are checked)


def candidate_record(c: Candidate) -> dict[str, Any]:
    return {"backend": c.backend, **({"variant": c.variant} if c.variant else {}), **({"dtype": c.dtype} if c.dtype
                                                                                       else {})}


def choose(
    candidates: Sequence[Candidate], reference: np.ndarray, reps: int = TIMING_REPS,
    check_reference: np.ndarray | None = None,
) -> dict[str, Any]:
    """Check the candidates' decisions, time them on the same items (interleaved) and pick the fastest that
    keeps the decisions, by at least :data:`DECISION_MARGIN` over the first (the baseline).

    ``reference``: torch fp32 p of the timing items; ``check_reference``: of the check items (each
    candidate's ``check``), None to check on the timing items. Returns the manifest record: the choice,
    every candidate's figures, the CPU, its load and the rule.
    """
    cpus = os.cpu_count() or 1
    load_before = load_average()
    checked = np.asarray(reference if check_reference is None else check_reference, dtype=np.float64)
    answers = {c.name: np.asarray((c.check or c.run)(), dtype=np.float64) for c in candidates}
    for c in candidates:
        c.run()  # warm-up
    times: dict[str, list[float]] = {c.name: [] for c in candidates}
    for rep in range(reps):
        for c in candidates[rep % len(candidates):] + candidates[: rep % len(candidates)]:
            t0 = time.perf_counter()
            c.run()
            times[c.name].append(time.perf_counter() - t0)
    load_after = load_average()
    n = max(len(reference), 1)
    figures: dict[str, dict[str, Any]] = {}
    for c in candidates:
        p = answers[c.name]
        agreement = float(np.mean((p > 0.5) == (checked > 0.5))) if len(checked) else 1.0
        max_dp = float(np.max(np.abs(p - checked))) if len(checked) else 0.0
        figures[c.name] = {
            **candidate_record(c),
            "seconds_per_item": min(times[c.name]) / n,
            "median_seconds_per_item": statistics.median(times[c.name]) / n,
            "decision_agreement": round(agreement, 4),
            "max_abs_diff_p": max_dp,
            "tolerance": c.tolerance,
            "eligible": agreement >= MIN_DECISION_AGREEMENT and max_dp <= c.tolerance,
        }
    base = candidates[0]
    eligible = [c for c in candidates if figures[c.name]["eligible"]] or [base]
    best = min(eligible, key=lambda c: figures[c.name]["seconds_per_item"])
    base_time = figures[base.name]["seconds_per_item"]
    if best is not base and figures[base.name]["eligible"] and (
        figures[best.name]["seconds_per_item"] > (1 - DECISION_MARGIN) * base_time
    ):
        best = base  # within the margin: not clearly faster than the exported graph
    for f in figures.values():
        f["speedup_vs_" + base.name.replace("-", "_")] = round(base_time / f["seconds_per_item"], 3)
    return {
        "choice": best.name,
        **candidate_record(best),
        "candidates": figures,
        "items": len(reference),
        "check_items": len(checked),
        "reps": reps,
        "cpu": cpu_name(),
        "cpus": cpus,
        "bf16_units": has_bf16_units(),
        "load_average": load_before,
        "load_average_after": load_after,
        "under_load": load_before is not None and load_before > cpus / 2,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rule": f"fastest candidate with decision agreement >= {MIN_DECISION_AGREEMENT} against torch fp32 on "
        f"the check items and max |dp| within its tolerance, best of {reps} interleaved timed rounds; the first "
        f"candidate is kept unless another is {DECISION_MARGIN:.0%} faster; torch-bf16 is a candidate only on "
        "CPUs with bf16 units; fp16 never (no faster than fp32 on the CPU provider)",
    }


def backend_for_load(record: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The backend (and its load options) a CPU load takes from a manifest's ``cpu_default`` record.

    A torch record is followed where torch and transformers are installed, and for bf16 only where this
    CPU has bf16 units (a record measured elsewhere); otherwise (and without a record) ONNX with the
    manifest's CPU variant.
    """
    if not record or record.get("backend") != "torch":
        return "onnx", {}
    dtype = str(record.get("dtype", "bfloat16"))
    if dtype == "bfloat16" and not has_bf16_units():
        return "onnx", {}
    if any(importlib.util.find_spec(m) is None for m in ("torch", "transformers")):
        return "onnx", {}
    return "torch", {"dtype": dtype}
