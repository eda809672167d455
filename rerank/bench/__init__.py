"""Benchmark harnesses behind ``rerank bench``: ``budgets`` (effectiveness against comparisons per query,
:mod:`rerank.bench.budgets`) and ``load`` (throughput and latency of a gRPC server, :mod:`rerank.bench.loadbench`).
The CLI imports them only when a benchmark runs."""

PHASES = ("throughput", "compare", "overhead", "memory")
"""Phases of ``rerank bench load`` (:mod:`rerank.bench.loadbench`)."""
