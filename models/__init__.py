"""Pairwise preference models: export to ONNX and the runtime that serves them.

Load and call::

    from rerank.models import ensure_embedded, load_model
    ensure_embedded("minilm")                      # once: exports the embedded MiniLM into the store
    model = load_model("minilm")                   # ONNX Runtime (CUDA fp32 if it works, else CPU int8)
    ensure_embedded("smollm-prp")                  # once (~1-2 min): SmolLM2-135M GGUF -> HF folder -> ONNX
    p = model.compare("query", [("passage a", "passage b")])   # P(a more relevant than b)
    result = model.compare_batch([("q", "a", "b")])  # .p and .stats (truncation counts, timings)

Export a checkpoint::

    from rerank.models import export_model
    export_model("path/to/checkpoint", "duo-cross-encoder", "out/dir", quantize="int8")

Record measured figures (speed, DL 2019 effectiveness) into an exported model's manifest with
``record_measurements(folder, variant, key, figures)``.

Nothing here imports the aggregation engine or the CLI; torch and transformers are imported only by the
export path and the torch backend.
"""

from .embedded import EMBEDDED
from .ensure import ensure_embedded
from .errors import (
    CorruptModelError,
    EmptyTextError,
    MissingTokenizerError,
    ModelError,
    ParityError,
    TextTooLongError,
    UnknownKindError,
    UnknownModelError,
    UnsupportedOperationError,
)
from .export import export_model
from .kind import Kind
from .load import BACKENDS, ModelInfo, list_models, load_model
from .manifest import Manifest, Variant, record_measurements
from .model import PairwiseModel
from .registry import KINDS, kind_class
from .store import ModelStore, default_store_root
from .types import (
    Backend,
    CompareResult,
    CompareStats,
    Item,
    ModelSpec,
    Prepared,
    RunOutput,
    RuntimeOptions,
)

__all__ = [
    "BACKENDS",
    "EMBEDDED",
    "KINDS",
    "Backend",
    "CompareResult",
    "CompareStats",
    "CorruptModelError",
    "EmptyTextError",
    "Item",
    "Kind",
    "Manifest",
    "MissingTokenizerError",
    "ModelError",
    "ModelInfo",
    "ModelSpec",
    "ModelStore",
    "PairwiseModel",
    "ParityError",
    "Prepared",
    "RunOutput",
    "RuntimeOptions",
    "TextTooLongError",
    "UnknownKindError",
    "UnknownModelError",
    "UnsupportedOperationError",
    "Variant",
    "default_store_root",
    "ensure_embedded",
    "export_model",
    "kind_class",
    "list_models",
    "load_model",
    "record_measurements",
]
