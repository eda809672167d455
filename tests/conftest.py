"""Shared pytest fixtures and the helpers several test files use (``from conftest import REPO, ...``)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_guards

REPO = Path(__file__).resolve().parents[1]
"""The repository's root folder."""

# ONNX Runtime's intra-op threads spin between operators unless told not to; the suite's in-process sessions and
# the servers it starts then burn the CPU that a second test run, or the other processes of a test, need (a
# served model under load: 22 s spinning vs 13 s not, bench/results/ort_spinning.md). The server already turns
# spinning off; the suite does it for every session (a test of the setting sets or clears it itself).
os.environ.setdefault("RERANK_ORT_SPINNING", "0")

def run_rerank(args: list[str], *, stdin: str = "", home: Path | None = None, timeout: float = 600,
               module: str = "rerank.cli") -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` in a subprocess (``RERANK_HOME=home`` when given): each entry point's smoke
    test; argument and input-error cases run in-process through the ``cli`` fixture."""
    env = {**os.environ, **({"RERANK_HOME": str(home)} if home is not None else {})}
    return subprocess.run([sys.executable, "-m", module, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env)


def __getattr__(name: str):
    if name == "NO_RETRY":  # imported on demand: grpc loads only for the tests that use it
        from rerank.client import RetryPolicy

        return RetryPolicy(attempts=1)
    raise AttributeError(name)


def link_tree(src: Path, dst: Path) -> Path:
    """A copy of the folder ``src`` at ``dst`` made of hard links where the file system allows (a model export
    copied in an instant); replace a file in the copy (``os.replace``), never write through it."""

    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:  # another file system
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link_or_copy)
    return dst


def _wait_for(cond: Callable[[], object], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def _sample(registry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _on_ci() -> bool:
    return pytest_guards.on_ci()


def pytest_addoption(parser, pluginmanager) -> None:
    """The suite's rules (a skip fails ``make test`` and CI; no hang outlives the run): tests/pytest_guards.py."""
    if not pluginmanager.has_plugin("pytest_guards"):  # not loaded already with -p pytest_guards
        pluginmanager.register(pytest_guards, "pytest_guards")


# Session fixtures that export a model or build an index: the first test to use one pays for it, minutes on a
# loaded machine (a SmolLM2 export took over 300 s at load average 15). Those tests get a longer timeout; the
# rest keep the default (pyproject's `timeout`), so a hang still ends the run early.
EXPORT_FIXTURES = frozenset({"embedded_store", "cran_index"})
EXPORT_TIMEOUT_S = 1200


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if EXPORT_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(EXPORT_TIMEOUT_S))


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """``wait_for(cond, timeout=10)``: poll ``cond()`` until true; AssertionError after ``timeout`` s."""
    return _wait_for


@pytest.fixture
def sample() -> Callable[..., float]:
    """``sample(registry, name, **labels)``: a Prometheus sample's value (0 when absent)."""
    return _sample


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder of the real test collections: $RERANK_DATA, else ../shared/data next to the repository."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    path = Path(os.environ.get("RERANK_DATA", default))
    if not path.is_dir():
        pytest.skip(f"data folder {path} not found; set RERANK_DATA to the shared data directory")
    return path


_EXPORT_CACHE = Path(os.environ.get("RERANK_TEST_CACHE", Path.home() / ".cache" / "rerank" / "test-exports"))


#: Export options of the session's exports beside the embedded defaults: the LLM's CPU default is not timed
#: here (minutes of candidate timing the other tests do not need); the measurement is tested on the tiny Llama
#: replica (tests/test_models_cpu_default.py, the export test that records the load) and a load following a
#: recorded default on SmolLM2 (tests/test_models_smollm.py).
FIXTURE_EXPORT_OPTIONS: dict[str, dict[str, Any]] = {"smollm-prp": {"cpu_default": "fp32"}}


def _export_key(name: str) -> str:
    """A digest of what an embedded model's export depends on: the source weights (the package's files, or
    its GGUF file), the fixture's export options and the export code (``models/*.py``)."""
    from rerank.models.embedded import EMBEDDED

    entry = EMBEDDED[name]
    files = [entry.gguf_path()] if entry.gguf_file else sorted(entry.source().rglob("*"))
    inputs = [p for p in files if p.is_file()]
    digest = hashlib.sha256(name.encode())
    options = FIXTURE_EXPORT_OPTIONS.get(name)
    if options:
        digest.update(repr(sorted(options.items())).encode())
    for path in [*inputs, *sorted((REPO / "models").glob("*.py")), *sorted((REPO / "models").glob("*.json"))]:
        digest.update(path.name.encode())
        with path.open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def embedded_store(tmp_path_factory) -> Callable[[str], Any]:
    """``embedded_store(name)``: a model store holding the embedded model ``name``, exported once. On a
    developer machine the export is kept under ``$RERANK_TEST_CACHE`` (default
    ``~/.cache/rerank/test-exports``) by the digest of its source weights and the export code, so later
    sessions reuse it; under ``CI=true`` it is exported afresh into the session's temporary folder."""
    from rerank.models import ModelStore, ensure_embedded

    stores: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in stores:
            if _on_ci():
                root = tmp_path_factory.mktemp(f"{name}-store")
            else:
                root = _EXPORT_CACHE / f"{name}-{_export_key(name)}"
            store = ModelStore(root)
            # atomic, and a no-op when the export is complete
            ensure_embedded(name, store=store, **FIXTURE_EXPORT_OPTIONS.get(name, {}))
            stores[name] = store
        return stores[name]

    return get


@pytest.fixture(scope="session")
def rerank_home(tmp_path_factory, embedded_store) -> Path:
    """A fresh RERANK_HOME whose model store (``<home>/models``) holds the embedded MiniLM (linked to the
    session's export); subprocesses given ``RERANK_HOME`` find it there."""
    home = tmp_path_factory.mktemp("rerank-home")
    (home / "models").mkdir()
    (home / "models" / "minilm").symlink_to(embedded_store("minilm").path("minilm"), target_is_directory=True)
    return home


@pytest.fixture(scope="session")
def minilm_store(rerank_home):
    """The session's model store with the embedded MiniLM exported."""
    from rerank.models import ModelStore

    return ModelStore(rerank_home / "models")


@pytest.fixture(scope="session")
def smollm_store(embedded_store):
    """A model store with the embedded ``smollm-prp`` (GGUF converted and exported once, its CPU default not
    timed: about 80 s on two cores, or reused from the developer cache); shared by every test file."""
    return embedded_store("smollm-prp")


@pytest.fixture(scope="session")
def minilm(minilm_store):
    """The real all-MiniLM-L6-v2 bi-encoder on ONNX Runtime (CPU here)."""
    from rerank.models import load_model

    return load_model("minilm", store=minilm_store)


@pytest.fixture(scope="session")
def minilm_server(minilm_store):
    """A real gRPC server on 127.0.0.1 (free port) serving MiniLM (fp32: batch-independent answers) as
    ``minilm`` (default) and again as ``minilm-b`` (for fusion), with a metrics endpoint; shared by the
    server tests."""
    from rerank.models import load_model
    from rerank.server.app import RerankServer
    from rerank.server.config import ServerConfig

    minilm = load_model("minilm", store=minilm_store, variant="fp32")
    config = ServerConfig(port=0, metrics_port=0, max_wait_ms=20.0, grace_s=5.0, warmup=False)
    server = RerankServer(config, models={"minilm": minilm, "minilm-b": minilm})
    server.start()
    yield server
    server.stop(grace=1.0)


@pytest.fixture
def cli(monkeypatch) -> Callable[..., tuple[int, str, str]]:
    """``cli(argv, stdin="", home=None, command=None)``: the ``rerank`` command (or another click ``command``,
    e.g. ``python -m rerank.retrieval``'s) run in-process with click's test runner; returns (exit code,
    stdout, stderr). Argument and input-error cases need no subprocess."""
    from click.testing import CliRunner

    from rerank.cli import cli as rerank_cli
    from rerank.cli_options import run_command

    handlers = logging.root.handlers[:]
    # the command's logging handler would keep this test's captured stderr, closed when the test ends
    monkeypatch.setattr(logging.root, "handlers", handlers)

    def run(argv: list[str], stdin: str = "", home: Path | None = None, command=None) -> tuple[int, str, str]:
        if home is not None:
            monkeypatch.setenv("RERANK_HOME", str(home))
        runner = CliRunner()
        with runner.isolation(input=stdin) as (out, err, _):
            code = run_command(command or rerank_cli, list(argv))
            sys.stdout.flush()
            sys.stderr.flush()
            return code, out.getvalue().decode(), err.getvalue().decode()

    return run
