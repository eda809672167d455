"""The wheel: built from the repository, installed with pip into a fresh venv that has neither the repository
nor grpcio-tools, it gives a working ``rerank`` command, ``rerank serve`` and client.

The venv gets the wheel's runtime dependencies (the ``cpu`` and ``server`` extras, followed through their own
requirements) as links to this environment's installed copies (a ``.pth`` to a folder of links holding only
them), so the test needs no network; pip installs the wheel with ``--no-index``, so a dependency the wheel
declares but the folder lacks fails the install.
"""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from rerank.server.replicas import start_replicas

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("cpu", "server")
PACKAGE_DIR = {"rerank": "rerank", "rerank/aggregation": "aggregation", "rerank/models": "models"}
GENERATED = {
    *(f"rerank/v1/{name}" for name in ("__init__.py", "rerank_pb2.py", "rerank_pb2_grpc.py", "rerank_pb2.pyi")),
    "rerank/proto/rerank/v1/rerank.proto",
}

CLIENT = """
import json, sys
import rerank, rerank.v1.rerank_pb2 as pb2
from rerank.client import RerankClient
from rerank.server.http_schema import proto_comments
client = RerankClient(sys.argv[1])
reply = client.rerank("how do plants make their food", [
    ("stocks", "The stock market fell sharply on Monday after the bank's report."),
    ("leaves", "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar."),
    ("coffee", "Espresso is brewed by forcing hot water through finely ground coffee."),
], models="minilm")
client.close()
print(json.dumps({"ids": reply.ids, "rerank": rerank.__file__, "pb2": pb2.__file__,
                  "sys_path": sys.path, "comments": len(proto_comments())}))
"""


def _copy_of_the_checkout(dest: Path) -> Path:
    """The checkout's files (tracked, and new ones git does not ignore), without build leftovers."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def _runtime_closure(requires: list[str], extras: tuple[str, ...]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``requires`` (with ``extras``) needs, following their own requirements."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, str]] = set()
    todo = [(text, extra) for text in requires for extra in ("", *extras)]
    while todo:
        text, extra = todo.pop()
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        found.setdefault(name, metadata.distribution(req.name))
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) not in seen:
                seen.add((name, wanted))
                todo += [(sub, wanted) for sub in found[name].requires or []]
    return found


def _link_farm(dists: dict[str, metadata.Distribution], folder: Path) -> None:
    """Links to each distribution's top-level modules, packages and metadata folder."""
    folder.mkdir()
    for name, dist in dists.items():
        assert dist.files, f"{name} has no RECORD: cannot tell its files"
        for top in {f.parts[0] for f in dist.files if f.parts[0] not in ("..", "__pycache__")}:
            if not (folder / top).exists():
                (folder / top).symlink_to(Path(str(dist.locate_file(top))).resolve())


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(600)  # with the MiniLM export of `minilm_store` when this test is the session's first user
def test_the_wheel_installs_and_serves_without_the_repository_or_grpcio_tools(tmp_path: Path, minilm_store) -> None:
    assert shutil.which("git"), "the wheel is built from the checkout's files as git lists them"
    source = _copy_of_the_checkout(tmp_path / "src")
    build = ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(tmp_path / "dist"), "."]
    built = _run([sys.executable, "-m", "pip", *build], source, dict(os.environ))
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("rerank-*.whl")

    # the wheel holds every file of the package folders (so every subpackage and its data) and the gRPC code
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = email.message_from_string(meta).get_all("Requires-Dist") or []
    expected = {
        f"{package}/{path.relative_to(source / folder).as_posix()}"
        for package, folder in PACKAGE_DIR.items()
        for path in (source / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert expected | GENERATED <= names, sorted((expected | GENERATED) - names)

    # a fresh venv: pip installs the wheel offline, its runtime dependencies linked in, grpcio-tools left out
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    closure = _runtime_closure(requires, EXTRAS)
    assert "grpcio-tools" not in closure and "rerank" not in closure, sorted(closure)  # dev extra only
    _link_farm(closure, tmp_path / "deps")
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "_rerank_deps.pth").write_text(f"{tmp_path / 'deps'}\n")
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "RERANK_HOME": str(tmp_path / "home"),
        "RERANK_PROTO_CACHE": str(tmp_path / "proto-cache"),
    }
    python = str(venv / "bin" / "python")
    install = ["--python", python, "install", "--no-index", "-q", f"{wheel}[{','.join(EXTRAS)}]"]
    installed = _run([sys.executable, "-m", "pip", *install], tmp_path, env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    no_tools = _run([python, "-c", "import grpc_tools"], tmp_path, env)
    assert no_tools.returncode == 1 and "No module named 'grpc_tools'" in no_tools.stderr, no_tools.stderr

    helped = _run([str(venv / "bin" / "rerank"), "--help"], tmp_path, env)
    assert helped.returncode == 0 and "serve" in helped.stdout, helped.stdout + helped.stderr

    serve = ["--model", "minilm", "--store", str(minilm_store.root)]
    (replica,) = start_replicas(1, serve, env=env, launcher=[str(venv / "bin" / "rerank")])
    try:
        asked = _run([python, "-c", CLIENT, replica.address], tmp_path, env)
    finally:
        code = replica.stop()
    assert asked.returncode == 0, asked.stderr + "".join(replica.lines[-20:])
    answer = json.loads(asked.stdout)
    assert answer["ids"][0] == "leaves" and sorted(answer["ids"]) == ["coffee", "leaves", "stocks"], answer
    assert code == 0, "".join(replica.lines[-20:])
    # the installed package, its shipped gRPC code and .proto; nothing from the repository, nothing generated
    assert Path(answer["rerank"]).is_relative_to(site) and Path(answer["pb2"]).is_relative_to(site), answer
    assert not any(entry.startswith(str(ROOT)) for entry in answer["sys_path"]), answer["sys_path"]
    assert answer["comments"] > 0  # the HTTP schema read the field comments of the shipped .proto
    assert not (tmp_path / "proto-cache").exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
