"""Load benchmark of the gRPC server: throughput and latency at 1/8/32 clients (k = 20, 100), server vs
in-process, the server's overhead, and its memory under load. Writes bench/results/load.md and load.json.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/load_bench.py --out bench/results
    .venv/bin/python bench/load_bench.py --phases memory --memory-seconds 300

Same as ``rerank bench load`` (the options are that command's); the code lives in ``rerank.bench.loadbench``.
"""

from __future__ import annotations

import sys

from rerank.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "load", *sys.argv[1:]]))
