"""Export times: tiny T5 (duo-t5), tiny Llama (prp) and the embedded MiniLM, with and without the CPU-default
measurement, and that measurement's decision on the tiny Llama.

    .venv/bin/python bench/export_times_bench.py --out bench/results [--reps 2]

Each export runs ``export_model`` end to end (ONNX export, parity checks of every variant, then, for the LLM
kinds with ``cpu_default="auto"``, the CPU-default measurement: models/cpu_default.py) into a fresh temporary
folder; the rows run interleaved, ``--reps`` times, and the table gives the median and the range of wall
seconds. MiniLM (``bi-encoder``) has no CPU-default measurement: one row. The load average before and after
each export is recorded, with the CPU-default record's own ``under_load`` flag and choice.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import machine, write_results

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rows(root: Path) -> dict[str, tuple[Any, str, dict[str, Any]]]:
    from rerank.models import testing as tiny

    t5 = tiny.build_tiny_t5(root / "t5")
    llama = tiny.build_tiny_llama(root / "llama")
    return {
        "tiny T5, duo-t5, cpu_default=auto": (t5, "duo-t5", {"cpu_default": "auto"}),
        "tiny T5, duo-t5, cpu_default=fp32": (t5, "duo-t5", {"cpu_default": "fp32"}),
        "tiny Llama, prp, cpu_default=auto": (llama, "prp", {"cpu_default": "auto"}),
        "tiny Llama, prp, cpu_default=fp32": (llama, "prp", {"cpu_default": "fp32"}),
        "MiniLM, bi-encoder (no measurement)": ("minilm", "bi-encoder", {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args(argv)
    from rerank.models import export_model

    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        table = rows(root)
        for rep in range(args.reps):
            for i, (label, (src, kind, options)) in enumerate(table.items()):
                load_before = round(os.getloadavg()[0], 2)
                t0 = time.perf_counter()
                manifest = export_model(src, kind, root / f"out-{rep}-{i}", **options)
                seconds = time.perf_counter() - t0
                record = dict(manifest.cpu_default)
                results.setdefault(label, []).append({
                    "seconds": round(seconds, 2), "load_before": load_before,
                    "load_after": round(os.getloadavg()[0], 2), "variants": sorted(manifest.variants),
                    "cpu_default": record.get("choice", manifest.default_variants.get("cpu")),
                    "under_load": record.get("under_load"),
                    "check_items": record.get("check_items"),
                })
                print(f"{label}: {seconds:.1f} s (load {load_before})", file=sys.stderr)
    info = machine()
    md = [
        "# Export times", "",
        f"`.venv/bin/python bench/export_times_bench.py --out bench/results --reps {args.reps}`, {info['utc']}, "
        f"{info['cores']} cores, load average at the end {info['loadavg']}.", "",
        "| export | wall seconds, median (range) | load average before each run | CPU default | check prompts |",
        "| --- | ---: | --- | --- | ---: |",
    ]
    for label, runs in results.items():
        secs = [r["seconds"] for r in runs]
        md.append(
            f"| {label} | {statistics.median(secs):.1f} ({min(secs):.1f}-{max(secs):.1f}) | "
            f"{', '.join(str(r['load_before']) for r in runs)} | "
            f"{', '.join(str(r['cpu_default']) + (' (under load)' if r['under_load'] else '') for r in runs)} | "
            f"{runs[0]['check_items'] or '-'} |"
        )
    write_results(Path(args.out), "export_times", {"machine": info, "results": results}, md)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
