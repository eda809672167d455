"""The dependency rule and no import circles (docs/architecture.md, "Dependency rule").

Every ``import`` statement of the package's source counts, wherever it stands: at module level, inside a
function, under ``if TYPE_CHECKING``. An import inside a function that closes a circle hides the circle from
the interpreter, not from the design.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> the package it is installed as (pyproject.toml, [tool.setuptools.package-dir])
FOLDERS = {"rerank": "rerank", "aggregation": "rerank.aggregation", "models": "rerank.models"}
# package -> packages it must never import (any module inside them)
FORBIDDEN = {
    "rerank.aggregation": ("rerank.models", "rerank.server", "rerank.cli", "rerank.pipeline", "rerank.retrieval"),
    "rerank.models": ("rerank.aggregation", "rerank.server", "rerank.cli", "rerank.pipeline"),
    # the Ray actor pool knows no command: each command hands it its own per-worker state
    "rerank.distributed": ("rerank.bench", "rerank.retrieval", "rerank.offline", "rerank.cli", "rerank.server"),
}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's own modules that ``name`` imports (``from pkg import submodule`` names the submodule)."""
    package = name if _is_package(path) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@functools.cache
def import_graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, target) for target in _imports(name, path, set(modules)))
    return graph


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_parser_sees_imports_at_every_level(tmp_path):
    """Imports inside functions and under ``TYPE_CHECKING`` count; ``from pkg import submodule`` names the
    submodule, ``from pkg.mod import name`` the module."""
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .store import Store\n"
        "if TYPE_CHECKING:\n"
        "    from .types import Spec\n"
        "def load():\n"
        "    from . import export\n"
        "    import rerank.models.gguf as gguf\n"
        "    from ..aggregation.engine import aggregate\n"
    )
    known = {"rerank.models", "rerank.models.store", "rerank.models.types", "rerank.models.export",
             "rerank.models.gguf", "rerank.aggregation", "rerank.aggregation.engine", "rerank.models.mod"}
    assert _imports("rerank.models.mod", source, known) == {
        "rerank.models.store", "rerank.models.types", "rerank.models.export", "rerank.models.gguf",
        "rerank.aggregation.engine",
    }
    graph = import_graph()
    assert len(graph) > 50 and graph.number_of_edges() > 100


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_rule(package):
    graph = import_graph()
    bad = sorted(
        f"{src} -> {dst}"
        for src, dst in graph.edges
        if _inside(src, package) and any(_inside(dst, other) for other in FORBIDDEN[package])
    )
    assert not bad, f"{package} breaks the dependency rule:\n" + "\n".join(bad)


def test_no_import_circles():
    graph = import_graph()
    circles = sorted(" -> ".join(sorted(c)) for c in nx.strongly_connected_components(graph) if len(c) > 1)
    assert not circles, "import circles (modules that import each other, at any level):\n" + "\n".join(circles)


def test_the_ray_pool_loads_no_command_module():
    """Importing rerank.distributed at run time pulls in neither a benchmark, retrieval nor a command module."""
    import subprocess
    import sys

    code = ("import sys, rerank.distributed; print(sorted(m for m in sys.modules if m.startswith("
            "('rerank.bench', 'rerank.retrieval', 'rerank.offline', 'rerank.cli', 'rerank.server'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
