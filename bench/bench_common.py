"""Shared helpers of the side-by-side benchmarks: interleaved timing, per-rep ratios, results files.

The machine is shared and noisy, so every comparison runs its contenders in turn inside each rep and
reports the median of the per-rep ratios (not a ratio of pooled times); the load average seen at the
start and the end of a run is written beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def timed(fn: Callable[[], Any], inner: int = 1) -> float:
    """Seconds per call of ``fn``, over ``inner`` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def interleaved(contenders: Mapping[str, Callable[[], Any]], reps: int, inner: int = 1) -> dict[str, list[float]]:
    """Per-rep seconds of each contender; within a rep they run in turn, the order rotating each rep."""
    names = list(contenders)
    for name in names:  # warm-up: imports, caches, first allocations
        contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(contenders[name], inner))
    return times


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over reps of ``numerator[i] / denominator[i]``."""
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPU, cores, Python, load average now."""
    return {
        "machine": platform.machine(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_results(out: Path, stem: str, data: dict[str, Any], markdown: list[str]) -> None:
    """Write ``stem.json`` and ``stem.md`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{stem}.md").write_text("\n".join(markdown) + "\n")


def add_out_and_data(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--out`` (results folder, default bench/results) and ``--data`` (the shared IR collections:
    $RERANK_DATA, else ../shared/data beside the repository), the options every harness takes."""
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--data", default=os.environ.get("RERANK_DATA", str(Path(__file__).resolve().parents[2]
                                                                           / "shared" / "data")))
    return parser
