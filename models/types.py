"""The data types of the models: an item, a model's spec and runtime options, what each stage returns, and
the backend protocol (see ``model.py`` for the stages)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .batching import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_TOKENS_PER_BATCH
from .errors import ModelError

Item = tuple[str, str, str]

DEFAULT_MAX_CHARS = 20_000
DEFAULT_CACHE_ITEMS = 16_384  # output rows kept by kinds whose sequences recur (bi-encoder texts)


@dataclass(frozen=True)
class ModelSpec:
    """What the runtime needs to know about a model; stored in ``manifest.json`` (see ``manifest.py``)."""

    kind: str
    inputs: tuple[str, ...]
    output: str
    max_query_tokens: int
    max_passage_tokens: int
    pad_token_id: int
    max_positions: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "inputs": list(self.inputs),
            "output": self.output,
            "max_query_tokens": self.max_query_tokens,
            "max_passage_tokens": self.max_passage_tokens,
            "pad_token_id": self.pad_token_id,
            "max_positions": self.max_positions,
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        return cls(
            kind=str(data["kind"]),
            inputs=tuple(str(x) for x in data["inputs"]),
            output=str(data["output"]),
            max_query_tokens=int(data["max_query_tokens"]),
            max_passage_tokens=int(data["max_passage_tokens"]),
            pad_token_id=int(data["pad_token_id"]),
            max_positions=None if data.get("max_positions") is None else int(data["max_positions"]),
            options=dict(data.get("options") or {}),
        )


@dataclass(frozen=True)
class RuntimeOptions:
    """Per-model runtime settings (not per request)."""

    max_tokens_per_batch: int = DEFAULT_MAX_TOKENS_PER_BATCH
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_chars: int = DEFAULT_MAX_CHARS
    # graph outputs kept per model, keyed by input sequence, for kinds that reuse sequences (0 = off)
    cache_items: int = DEFAULT_CACHE_ITEMS
    # run a prefix shared by several prompts once, where the backend can (models/prefix.py)
    share_prefixes: bool = True

    def __post_init__(self) -> None:
        for name in ("max_tokens_per_batch", "max_batch_size", "max_chars"):
            if int(getattr(self, name)) < 1:
                raise ModelError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.cache_items) < 0:
            raise ModelError(f"cache_items must be >= 0, got {self.cache_items}")


@dataclass(frozen=True)
class Prepared:
    """Output of the tokenize stage: model input sequences plus what postprocess needs to map them back."""

    n_items: int
    input_ids: list[Sequence[int]]
    token_type_ids: list[Sequence[int]] | None
    index: np.ndarray | None
    truncated_sequences: int
    truncated_items: int
    tokenize_s: float = 0.0
    item_truncated: np.ndarray | None = None  # per item: its p depends on a cut text


@dataclass(frozen=True)
class RunOutput:
    """Output of the run stage: one row of graph output per prepared sequence, in prepared order."""

    values: np.ndarray
    batches: int
    tokens: int
    padded_tokens: int
    run_s: float
    cached_sequences: int = 0  # rows taken from the model's sequence cache instead of run


@dataclass(frozen=True)
class CompareStats:
    """Per-call figures. ``truncated_sequences``: model inputs in which a field was cut to its budget;
    ``truncated_items``: items whose p depends on a cut text."""

    items: int
    sequences: int
    truncated_sequences: int
    truncated_items: int
    batches: int
    tokens: int
    padded_tokens: int
    tokenize_s: float
    run_s: float
    postprocess_s: float
    cached_sequences: int = 0


@dataclass(frozen=True)
class CompareResult:
    """p[i] = P(a_i more relevant than b_i | q_i), float64, with the call's stats; ``truncated[i]``: item
    i's p depends on a text cut to its budget (None where the kind does not say per item)."""

    p: np.ndarray
    stats: CompareStats
    truncated: np.ndarray | None = None

    def __array__(self, dtype=None, copy=None):
        return self.p if dtype is None else self.p.astype(dtype)


class Backend(Protocol):
    """Runs the graph contract on one padded batch."""

    name: str
    provider: str
    inputs: tuple[str, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray: ...
