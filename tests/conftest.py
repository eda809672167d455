"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder of the real test collections: $RERANK_DATA, else ../shared/data next to the repository."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    path = Path(os.environ.get("RERANK_DATA", default))
    if not path.is_dir():
        pytest.skip(f"data folder {path} not found; set RERANK_DATA to the shared data directory")
    return path
