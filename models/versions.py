"""Versions of the libraries an artefact was made with (recorded in model manifests, GGUF conversion records
and index manifests)."""

from __future__ import annotations

import contextlib
import importlib
from importlib.metadata import PackageNotFoundError, version


def library_versions(*names: str) -> dict[str, str]:
    """``{name: version}`` of each installed distribution or, where no distribution has that name (``faiss``
    from ``faiss-cpu``, ``onnxruntime`` from ``onnxruntime-gpu``), of the module's ``__version__``; names
    found neither way are left out."""
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            with contextlib.suppress(ImportError, AttributeError):
                out[name] = str(importlib.import_module(name).__version__)
    return out
