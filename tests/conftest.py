"""Shared pytest fixtures."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def _wait_for(cond: Callable[[], object], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def _sample(registry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _fail_skip_on_ci(report) -> None:
    """Under ``CI=true`` a skip is a failure: every guard (``importorskip``, a missing data folder, a
    module-level skip) would otherwise let a broken install pass in silence. xfail stays as it is."""
    if report.skipped and not hasattr(report, "wasxfail") and _on_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_on_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip_on_ci(outcome.get_result())


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


_REPO = Path(__file__).resolve().parents[1]
_EXPORT_CACHE = Path(os.environ.get("RERANK_TEST_CACHE", Path.home() / ".cache" / "rerank" / "test-exports"))


def _export_key(name: str) -> str:
    """A digest of what an embedded model's export depends on: the source weights (the package's files, or
    its GGUF file) and the export code (``models/*.py``)."""
    from rerank.models.embedded import EMBEDDED

    entry = EMBEDDED[name]
    files = [entry.gguf_path()] if entry.gguf_file else sorted(entry.source().rglob("*"))
    inputs = [p for p in files if p.is_file()]
    digest = hashlib.sha256(name.encode())
    for path in [*inputs, *sorted((_REPO / "models").glob("*.py")), *sorted((_REPO / "models").glob("*.json"))]:
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
            ensure_embedded(name, store=store)  # atomic, and a no-op when the export is complete
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
    """A model store with the embedded ``smollm-prp`` (GGUF converted and exported once: about 80 s on
    two cores, or reused from the developer cache)."""
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
def cli(capsys, monkeypatch) -> Callable[..., tuple[int, str, str]]:
    """``cli(argv, stdin="", home=None)``: the ``rerank`` command run in-process (argument and input-error
    cases need no subprocess); returns (exit code, stdout, stderr)."""
    from rerank.cli import main

    handlers = logging.root.handlers[:]
    # the command's logging handler would keep this test's captured stderr, closed when the test ends
    monkeypatch.setattr(logging.root, "handlers", handlers)

    def run(argv: list[str], stdin: str = "", home: Path | None = None) -> tuple[int, str, str]:
        if home is not None:
            monkeypatch.setenv("RERANK_HOME", str(home))
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run
