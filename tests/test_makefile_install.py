"""`make test` brings what the tests need and makes a skip fail; `.ci/run` sets CI=true itself.

`make install` run twice at once (`make serve` and `make test` on a fresh clone) installs once, without the
race on `.venv` ("No module named pip"), and keeps setuptools' editable-install notice out of the output.

The interpreter is a stand-in script (``FAKE_PYTHON``): the real install takes many minutes and the network.
It behaves like ``python -m venv`` where it matters for the race: ``bin/python`` appears first and pip only
a moment later, so a second install that starts then fails as the real one did.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO as ROOT

FAKE_PYTHON = r"""#!/usr/bin/env bash
# stand-in for python: `-m venv DIR` and `-m pip ...` only
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; sleep 1; touch "$3/pip-ready"; exit 0
fi
venv="$(dirname "$(dirname "$0")")"
if [ "$1 $2" = "-m pip" ]; then
  [ -f "$venv/pip-ready" ] || { echo "$0: No module named pip" >&2; exit 1; }
  echo "pip ${*:3} | PYTHONWARNINGS=$PYTHONWARNINGS" >> "$venv/pip.log"; sleep 0.2; exit 0
fi
if [ "$1 $2" = "-m pytest" ]; then echo "pytest ${*:3}" >> "$venv/../run.log"; exit 0; fi
exit 2
"""


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("flock") is None, reason="needs make and flock")
def test_two_concurrent_installs_take_turns_and_install_once(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml", "setup.py", "constraints-cpu.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    command = ["make", "--no-print-directory", "install", f"PYTHON={fake}"]
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)  # the second starts while the first is inside `python -m venv`
    second = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [p.communicate(timeout=60)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    log = (tmp_path / ".venv" / "pip.log").read_text().splitlines()
    assert len(log) == 3, log  # pip upgrade, the project, the embedded models: once
    assert all(line.endswith("PYTHONWARNINGS=ignore:Editable installation") for line in log)
    assert "up to date (installed by a concurrent make)" in outputs[1]
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout


def _fake_checkout(tmp_path: Path) -> Path:
    """The files `make install` and `make test` read, a stand-in python and a stand-in haproxy install script
    (both log to run.log)."""
    for name in ("Makefile", "pyproject.toml", "setup.py", "constraints-cpu.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    script = tmp_path / "deploy" / "haproxy" / "install.sh"
    script.parent.mkdir(parents=True)
    script.write_text('echo "install.sh" >> run.log\n')
    return fake


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_installs_haproxy_then_runs_the_suite_with_skips_failing(tmp_path: Path) -> None:
    fake = _fake_checkout(tmp_path)
    proc = subprocess.run(["make", "--no-print-directory", "test", f"PYTHON={fake}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "run.log").read_text().splitlines() == ["install.sh", "pytest -q --fail-on-skip --durations=15"]


def test_ci_run_sets_ci_true_and_runs_install_lint_test(tmp_path: Path) -> None:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make = bin_dir / "make"
    make.write_text(f'#!/bin/sh\necho "make $* CI=$CI" >> {tmp_path / "make.log"}\n')
    make.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "make.log").read_text().splitlines() == [
        "make install CI=true", "make lint CI=true", "make test CI=true"]
