"""Traffic patterns of ``rerank bench load`` (rerank/bench/loadbench.py): what each driver sends when.

Timings are benchmark output (bench/results/load.md); these tests check the patterns themselves.
"""

from __future__ import annotations

import threading
import time

from rerank.bench.loadbench import DRIVERS, Request, drive_bursty

REQUESTS = [Request(str(i), f"q{i}", ("a", "b"), ("x", "y")) for i in range(5)]


def recording_call(events: list, lock: threading.Lock, pause: float = 0.01):
    def make(i: int):
        def call(req: Request) -> None:
            with lock:
                events.append(("start", i, time.perf_counter()))
            time.sleep(pause * (1 + i % 3))  # clients finish at different times
            with lock:
                events.append(("end", i, time.perf_counter()))

        return call

    return make


def test_bursty_clients_send_together_and_wait_for_the_whole_burst():
    events: list = []
    stats = drive_bursty(4, 0.15, recording_call(events, threading.Lock()), REQUESTS)
    starts = sorted(t for kind, _, t in events if kind == "start")
    ends = sorted(t for kind, _, t in events if kind == "end")
    bursts = len(starts) // 4
    assert len(starts) == len(ends) == len(stats.latencies) == 4 * bursts and bursts >= 2
    for b in range(1, bursts):
        # every request of burst b starts after every request of burst b - 1 has returned
        assert min(starts[4 * b : 4 * b + 4]) >= max(ends[4 * (b - 1) : 4 * b])
    assert stats.wall > 0 and not stats.errors


def test_bursty_errors_are_counted_and_the_burst_still_completes():
    def make(i: int):
        def call(req: Request) -> None:
            if i == 0:
                raise RuntimeError("boom")

        return call

    stats = drive_bursty(3, 0.05, make, REQUESTS)
    assert stats.errors["RuntimeError"] >= 1
    assert len(stats.latencies) == 2 * stats.errors["RuntimeError"]


def test_both_patterns_are_registered():
    assert set(DRIVERS) == {"steady", "bursty"}
