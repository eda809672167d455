"""The suite's rules (tests/pytest_guards.py), each shown on a small test file run by pytest in a subprocess:
a deadlocked test becomes a named failure with every thread's stack within a bound and the run goes on; a hang
the timeout's signal cannot end stops the run with the test's name and the stacks; a thread that never ends
cannot keep the process alive after the summary; and a skip fails the run under ``--fail-on-skip``/``CI=true``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO

TIMEOUT_S = 2
BACKSTOP_S = 3
SHUTDOWN_S = 3
INI = f"""[pytest]
timeout = {TIMEOUT_S}
timeout_method = signal
timeout_backstop_s = {BACKSTOP_S}
shutdown_timeout_s = {SHUTDOWN_S}
"""

# test_deadlock blocks on a lock that a non-daemon thread holds for ever (a deadlock between two threads); the
# thread is still there after the summary, so interpreter shutdown would wait on it for ever too
DEADLOCK = """
import threading

held = threading.Event()
lock = threading.Lock()


def holder():
    with lock:
        held.set()
        threading.Event().wait()  # never set: the lock is never released


def test_deadlock():
    threading.Thread(target=holder, name="lock holder").start()
    held.wait()
    lock.acquire()


def test_after_the_deadlock():
    assert True
"""

# the test times out (the alarm fires once), then its fixture's teardown blocks on the same lock for ever:
# only the backstop can end that
TEARDOWN_HANG = """
import threading

import pytest

lock = threading.Lock()


@pytest.fixture
def stuck_teardown():
    yield
    lock.acquire()


def test_times_out_then_hangs_in_teardown(stuck_teardown):
    threading.Thread(target=lock.acquire, name="lock taker", daemon=True).start()
    threading.Event().wait()


def test_never_reached():
    assert True
"""

SKIP = """
import pytest


def test_skips():
    pytest.skip("the tool is not installed")


def test_runs():
    assert True
"""


def run_pytest(tmp_path: Path, source: str, *args: str, env: dict[str, str] | None = None,
               limit: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_case.py").write_text(source)
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS", "PYTEST_TIMEOUT")}
    # only the two plugins the rules need (the installed ones' entry points would add seconds of start-up)
    environ.update(PYTHONPATH=str(REPO / "tests"), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", **(env or {}))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "pytest_timeout", "-p", "pytest_guards", "-p",
                           "no:cacheprovider", "-v", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=limit, env=environ)
    return proc, time.monotonic() - start


def test_a_deadlocked_test_fails_by_name_with_stacks_and_the_run_goes_on(tmp_path: Path) -> None:
    proc, seconds = run_pytest(tmp_path, DEADLOCK)
    out = proc.stdout + proc.stderr
    assert "test_case.py::test_deadlock FAILED" in out and f"Timeout (>{TIMEOUT_S}.0s)" in out, out
    assert "Stack of lock holder" in out and "threading.Event().wait()" in out, out  # the other thread's stack
    assert "test_case.py::test_after_the_deadlock PASSED" in out and "1 failed, 1 passed" in out, out
    # the lock holder never ends: shutdown would join it for ever; the guard ends the process after the bound,
    # with the run's status and the stacks of what it waited on
    assert "HANG at interpreter shutdown" in out and "lock holder" in out.split("HANG at interpreter")[1], out
    assert proc.returncode == 1, out
    assert seconds < TIMEOUT_S + SHUTDOWN_S + 30, seconds


def test_a_hang_the_signal_cannot_end_stops_the_run_with_the_name_and_stacks(tmp_path: Path) -> None:
    proc, seconds = run_pytest(tmp_path, TEARDOWN_HANG)
    out = proc.stdout + proc.stderr
    name = "test_case.py::test_times_out_then_hangs_in_teardown"
    assert f"HANG: {name}" in out and f"FAILED {name} - hung past its {TIMEOUT_S}" in out, out
    assert "Stack of MainThread" in out and "lock.acquire()" in out, out  # where the main thread is stuck
    assert "test_never_reached" not in out, out
    assert proc.returncode == 1, out
    assert seconds < TIMEOUT_S + BACKSTOP_S + 30, seconds


def test_a_passing_run_whose_thread_never_ends_exits_non_zero_in_bounded_time(tmp_path: Path) -> None:
    source = DEADLOCK.replace("    lock.acquire()\n", "    assert lock.locked()\n")
    proc, seconds = run_pytest(tmp_path, source)
    out = proc.stdout + proc.stderr
    assert "2 passed" in out and "HANG at interpreter shutdown" in out, out
    assert proc.returncode == 1 and "exiting with status 1" in out, out
    assert seconds < SHUTDOWN_S + 30, seconds


def test_a_clean_run_exits_at_once_with_status_0(tmp_path: Path) -> None:
    proc, seconds = run_pytest(tmp_path, "def test_ok():\n    assert True\n")
    assert proc.returncode == 0 and "HANG" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert seconds < SHUTDOWN_S + 20, seconds


def test_a_skip_fails_the_run_under_fail_on_skip_and_ci(tmp_path: Path) -> None:
    plain, _ = run_pytest(tmp_path, SKIP)
    assert plain.returncode == 0 and "1 passed, 1 skipped" in plain.stdout, plain.stdout
    for args, env, why in ((["--fail-on-skip"], {}, "--fail-on-skip"), ([], {"CI": "true"}, "CI=true")):
        proc, _ = run_pytest(tmp_path, SKIP, *args, env=env)
        assert proc.returncode == 1, proc.stdout
        assert "1 failed, 1 passed" in proc.stdout, proc.stdout
        assert f"a skip fails this run ({why}: every test must run): Skipped: the tool is not installed" in (
            proc.stdout), proc.stdout


def test_this_suite_arms_the_backstop_for_each_test(request) -> None:
    """The rules are on in this very run (conftest registers the plugin; pytest-timeout loads by entry point)."""
    import threading

    assert f"hang backstop {request.node.nodeid}" in {t.name for t in threading.enumerate()}
