"""The model kind's base class: texts -> sequences (``prepare``) and graph output -> p (``postprocess``), and
the export half (``describe``, ``torch_module``) that each kind (``bi_encoder.py``, ``duo_t5.py``, ...)
fills in."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .errors import ModelError, UnsupportedOperationError
from .types import Item, ModelSpec, Prepared

TRUNCATIONS = ("reference", "fields")
BUDGET_OPTIONS = ("max_query_tokens", "max_passage_tokens")


class Kind:
    """Runtime half of a model kind: texts -> sequences (``prepare``) and graph output -> p (``postprocess``).

    The export half (``describe``: read a source folder into a ``ModelSpec``; ``torch_module``: the wrapper
    module whose forward is the graph contract) lives on the same class as classmethods and imports torch
    and transformers lazily, so the runtime needs neither.
    """

    name: ClassVar[str]
    output: ClassVar[str] = "logit"
    supports_embed: ClassVar[bool] = False
    # the same input sequence recurs across calls (a bi-encoder's texts in every sampling round), so its
    # graph output is worth keeping in the model's SequenceCache
    reuses_sequences: ClassVar[bool] = False
    default_max_query_tokens: ClassVar[int] = 64
    default_max_passage_tokens: ClassVar[int] = 192
    # budgets of ``truncation="reference"`` where the reference's differ from the per-field defaults, and the
    # budgets the reference's rule takes at all (prp: both; duoBERT: the query's; pygaggle, CrossEncoder: none)
    reference_max_query_tokens: ClassVar[int | None] = None
    reference_max_passage_tokens: ClassVar[int | None] = None
    reference_budgets: ClassVar[frozenset[str]] = frozenset()
    export_options: ClassVar[frozenset[str]] = frozenset()  # kind-specific options ``describe`` accepts
    # transformers auto classes whose architectures the kind exports (checked before any weight is read)
    architectures: ClassVar[tuple[str, ...]] = ("AutoModel",)
    # bumped when the kind's scoring changes, so embedded exports made by older code are redone
    revision: ClassVar[int] = 1
    # one score per (query, passage): p(a, b) is a function of two scores, and ``prepare_scores`` /
    # ``postprocess_scores`` give the scores themselves (cascade stages rank by them, one call per candidate)
    pointwise: ClassVar[bool] = False
    # a pairwise LLM (seq2seq or causal prompt): the export measures its CPU backends and keeps the fastest
    # that holds the fp32 decisions as the CPU default (models/cpu_default.py)
    measured_cpu_default: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec, encoder: Any) -> None:
        self.spec = spec
        self.encoder = encoder
        self.check()

    def check(self) -> None:
        """Raise ``ModelError`` when the spec's budgets cannot fit the model."""
        longest = self.max_sequence_tokens()
        if self.spec.max_positions is not None and longest > self.spec.max_positions:
            raise ModelError(
                f"{self.name}: budgets give sequences of up to {longest} tokens (query "
                f"{self.spec.max_query_tokens}, passage {self.spec.max_passage_tokens}) but the model "
                f"takes at most {self.spec.max_positions} positions"
            )
        if self.spec.max_query_tokens < 1 or self.spec.max_passage_tokens < 1:
            raise ModelError("token budgets must be >= 1")

    def max_sequence_tokens(self) -> int:
        raise NotImplementedError

    def prepare(self, items: Sequence[Item]) -> Prepared:
        raise NotImplementedError

    def postprocess(self, prepared: Prepared, outputs: np.ndarray) -> np.ndarray:
        """Default for pairwise kinds: one logit per item, p = sigmoid(logit)."""
        return sigmoid(outputs.astype(np.float64).reshape(-1))

    def prepare_texts(self, texts: Sequence[str], role: str) -> Prepared:
        raise UnsupportedOperationError(f"model kind {self.name!r} has no embeddings (only 'bi-encoder')")

    def prepare_scores(self, query: str, passages: Sequence[str]) -> Prepared:
        raise UnsupportedOperationError(f"model kind {self.name!r} is pairwise: it has no per-passage score")

    def postprocess_scores(self, prepared: Prepared, outputs: np.ndarray) -> np.ndarray:
        raise UnsupportedOperationError(f"model kind {self.name!r} is pairwise: it has no per-passage score")

    # --- export half ------------------------------------------------------------------------------
    @classmethod
    def resolve_truncation(cls, options: dict[str, Any]) -> str:
        """``reference`` (the reference code's rule) unless asked otherwise; a budget the reference's rule does
        not take (``max_passage_tokens`` for duoBERT, any budget for duoT5) means per-field budgets,
        ``fields``, and is an error next to an explicit ``reference``."""
        given = options.get("truncation")
        if given is not None and given not in TRUNCATIONS:
            raise ModelError(f"truncation must be one of {', '.join(TRUNCATIONS)}, got {given!r}")
        foreign = [b for b in BUDGET_OPTIONS if options.get(b) and b not in cls.reference_budgets]
        if given is None:
            return "fields" if foreign else "reference"
        if given == "reference" and foreign:
            raise ModelError(
                f"{cls.name}: the reference truncation takes no {' or '.join(foreign)} (its reference cuts "
                "otherwise); use truncation 'fields' for per-field budgets"
            )
        return str(given)

    @classmethod
    def budgets(cls, options: dict[str, Any]) -> tuple[int, int]:
        """Query and passage budgets: the user's, else the truncation rule's defaults."""
        reference = cls.resolve_truncation(options) == "reference"
        query = options.get("max_query_tokens") or (reference and cls.reference_max_query_tokens)
        passage = options.get("max_passage_tokens") or (reference and cls.reference_max_passage_tokens)
        return int(query or cls.default_max_query_tokens), int(passage or cls.default_max_passage_tokens)

    @classmethod
    def describe(cls, source: Path, hf_tokenizer: Any, hf_config: Any, **options: Any) -> ModelSpec:
        raise NotImplementedError

    @classmethod
    def torch_module(
        cls, source: Path, spec: ModelSpec, *, dtype: Any = None, attn_implementation: str = "eager"
    ):
        raise NotImplementedError


def sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float64)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out
