"""The test suite's two rules, as a pytest plugin (``tests/conftest.py`` registers it; ``-p pytest_guards``
with ``tests/`` on ``PYTHONPATH`` loads it alone, as ``tests/test_pytest_guards.py`` does).

1. **A skip is a failure** when the README's command runs (``make test`` passes ``--fail-on-skip``) and under
   ``CI=true``: every guard (``importorskip``, a missing data folder or program, a module-level skip) would
   otherwise let a broken install pass in silence. xfail stays as it is.
2. **No hang outlives the suite.** pytest-timeout's ``signal`` method (pyproject's ``timeout``) ends a test that
   runs too long with a failure naming it and the stacks of every thread, and the run goes on; SIGALRM
   interrupts a lock acquire or a join in the main thread, so a test blocked in a lock that another thread
   holds fails too. Where the signal cannot end it (the alarm fires once, so a teardown that hangs after the
   test's timeout; a main thread stuck in C code), a backstop ``timeout_backstop_s`` later (ini, default 60 s)
   runs pytest-timeout's ``thread`` method: the test named, its captured output, every thread's stack, then
   exit status 1 (the rest of the run is lost; the name and the stacks say where to look). Last, after the
   summary, interpreter shutdown (which joins the non-daemon threads, gRPC's thread pools among them) gets
   ``shutdown_timeout_s`` (ini, default 60 s); past it the stacks of the threads it waits on are printed and
   the process exits with the run's status, or 1 when the run had passed: a thread that never ends is a hang.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time

import pytest

FAIL_ON_SKIP_OPTION = "--fail-on-skip"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(FAIL_ON_SKIP_OPTION, action="store_true", default=False,
                     help="a skipped test fails the run (make test and CI=true set it)")
    parser.addini("timeout_backstop_s", "seconds past a test's timeout before the process ends with the "
                  "test's name and every thread's stack (the timeout's signal could not end it)", default="60")
    parser.addini("shutdown_timeout_s", "seconds interpreter shutdown may wait on threads after the summary",
                  default="60")


# --------------------------------------------------------------------------- 1. a skip is a failure
def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skips_fail(config: pytest.Config) -> bool:
    return bool(config.getoption("fail_on_skip", default=False)) or on_ci()


def _fail_skip(report, config: pytest.Config) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and skips_fail(config):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        why = "CI=true" if on_ci() else FAIL_ON_SKIP_OPTION
        report.outcome = "failed"
        report.longrepr = f"skipped, and a skip fails this run ({why}: every test must run): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result(), item.config)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result(), collector.config)


# --------------------------------------------------------------------------- 2. no hang outlives the suite
def _backstop(item: pytest.Item, settings, seconds: float) -> None:
    import pytest_timeout

    terminal = item.config.get_terminal_writer()
    terminal.line()
    terminal.sep("!", title=f"HANG: {item.nodeid} still runs {seconds:.0f} s after it started", red=True)
    terminal.line(f"FAILED {item.nodeid} - hung past its {settings.timeout} s timeout, and the timeout's signal "
                  "could not end it; every thread's stack follows, then the run ends with status 1", red=True)
    pytest_timeout.timeout_timer(item, settings)  # captured output, stacks of all threads, os._exit(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    settings = None
    import pytest_timeout

    if item.config.pluginmanager.is_registered(pytest_timeout):  # by entry point ("timeout") or -p pytest_timeout
        settings = pytest_timeout._get_item_settings(item)
    if settings is None or not settings.timeout or settings.timeout <= 0:
        yield
        return
    seconds = settings.timeout + float(item.config.getini("timeout_backstop_s"))
    timer = threading.Timer(seconds, _backstop, (item, settings, seconds))
    timer.name = f"hang backstop {item.nodeid}"
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


_EXIT_STATUS = pytest.StashKey[int]()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


def _end_stuck_shutdown(seconds: float, status: int) -> None:
    time.sleep(seconds)
    waiting = [t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    stream = sys.__stderr__
    stream.write(f"\nHANG at interpreter shutdown: still waiting {seconds:.0f} s after the summary on "
                 f"{len(waiting)} thread(s) ({', '.join(t.name for t in waiting)}); their stacks:\n")
    stream.flush()
    faulthandler.dump_traceback(file=stream, all_threads=True)
    code = status or 1
    stream.write(f"exiting with status {code}\n")
    stream.flush()
    os._exit(code)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _EXIT_STATUS not in config.stash:  # --help, --version, or a run that never started
        return
    seconds = float(config.getini("shutdown_timeout_s"))
    guard = threading.Thread(target=_end_stuck_shutdown, args=(seconds, config.stash[_EXIT_STATUS]),
                             name="shutdown guard", daemon=True)
    guard.start()
