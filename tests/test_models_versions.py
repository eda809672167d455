"""``library_versions``: the one helper that records library versions (model manifests, GGUF conversions,
index manifests)."""

from __future__ import annotations

import numpy as np
import pytest

import rerank
from rerank.models.versions import library_versions


def test_distributions_and_modules_and_missing_names():
    faiss = pytest.importorskip("faiss")  # installed as faiss-cpu / faiss-gpu: found through its module
    got = library_versions("numpy", "faiss", "rerank", "no-such-distribution-here")
    assert got == {"numpy": np.__version__, "faiss": faiss.__version__, "rerank": rerank.__version__}
