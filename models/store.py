"""The model store: exported models by name, one folder each.

Store root: ``$RERANK_HOME/models`` when ``RERANK_HOME`` is set, else ``~/.cache/rerank/models``; each model
is a folder ``<root>/<name>/`` as written by ``export_model``; ``<root>/.sources/`` holds the converted
sources of embedded GGUF models (``embedded.py``; dot-folders are not models).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ModelError
from .manifest import MANIFEST_FILE, Manifest

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

SOURCES_DIR = ".sources"


def default_store_root() -> Path:
    home = os.environ.get("RERANK_HOME")
    if home:
        return Path(home).expanduser() / "models"
    return Path.home() / ".cache" / "rerank" / "models"


class ModelStore:
    """A folder of exported models, one sub-folder per name."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_store_root()

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ModelError(f"bad model name {name!r}: use letters, digits, '.', '_' and '-'")
        return self.root / name

    def __contains__(self, name: object) -> bool:
        return (
            isinstance(name, str) and bool(_NAME.match(name)) and (self.root / name / MANIFEST_FILE).is_file()
        )

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def manifest(self, name: str) -> Manifest:
        return Manifest.read(self.path(name))


def as_store(store: ModelStore | str | Path | None) -> ModelStore:
    return store if isinstance(store, ModelStore) else ModelStore(store)
