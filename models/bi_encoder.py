"""Kind ``bi-encoder``: p(a, b) = sigmoid((cos(q, a) - cos(q, b)) / T) from a pooled, normalised embedding.

Consistent by construction (p(a, b) = 1 - p(b, a)). Each distinct text of a call is encoded once (the
call's texts are keyed by role and text), so all pairs of k candidates of one query cost k + 1 encodings;
the model's sequence cache (``RuntimeOptions.cache_items``) keeps the embeddings, so later sampling rounds
of the same request (and other requests with the same texts) encode nothing again.
``embed`` exposes the embeddings (float32, L2-normalised) for retrieval.

Formulas and sources: docs/references.md#pointwise-kinds-and-the-bi-encoder-comparator.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError
from .kind import Kind, sigmoid
from .types import Item, ModelSpec, Prepared

DEFAULT_TEMPERATURE = 0.05


def _pooling(source: Path) -> str:
    """Sentence-transformers pooling mode from ``1_Pooling/config.json`` (mean when absent)."""
    cfg = source / "1_Pooling" / "config.json"
    if not cfg.is_file():
        return "mean"
    data = json.loads(cfg.read_text())
    if data.get("pooling_mode_cls_token"):
        return "cls"
    if data.get("pooling_mode_mean_tokens", True):
        return "mean"
    raise ModelError(f"{cfg}: only mean or CLS pooling is supported")


def _st_max_seq_length(source: Path) -> int | None:
    cfg = source / "sentence_bert_config.json"
    if cfg.is_file():
        value = json.loads(cfg.read_text()).get("max_seq_length")
        return int(value) if value else None
    return None


class BiEncoder(Kind):
    name = "bi-encoder"
    output = "embedding"
    supports_embed = True
    reuses_sequences = True
    pointwise = True
    default_max_query_tokens = 64
    default_max_passage_tokens = 256
    export_options = frozenset({"temperature"})

    def __init__(self, spec: ModelSpec, encoder: Any) -> None:
        super().__init__(spec, encoder)
        self.temperature = float(spec.options.get("temperature", DEFAULT_TEMPERATURE))
        if not self.temperature > 0:
            raise ModelError(f"temperature must be > 0, got {self.temperature}")

    def max_sequence_tokens(self) -> int:
        lay = self.encoder.single
        return (
            len(lay.prefix) + len(lay.suffix) + max(self.spec.max_query_tokens, self.spec.max_passage_tokens)
        )

    def _encode(self, keys: Sequence[tuple[str, str]]) -> tuple[list[list[int]], list[list[int]], np.ndarray]:
        """Sequences for (role, text) keys; returns ids, types and a per-key truncated flag."""
        lay = self.encoder.single
        budgets = {"query": self.spec.max_query_tokens, "passage": self.spec.max_passage_tokens}
        fields: list[Any] = [None] * len(keys)
        for role, budget in budgets.items():
            rows = [i for i, (r, _) in enumerate(keys) if r == role]
            for i, f in zip(rows, self.encoder.fields([keys[i][1] for i in rows], budget), strict=True):
                fields[i] = f
        ids = [[*lay.prefix, *f.ids, *lay.suffix] for f in fields]
        types = [[*lay.prefix_types, *([lay.type_x] * len(f.ids)), *lay.suffix_types] for f in fields]
        truncated = np.fromiter((f.truncated for f in fields), dtype=bool, count=len(fields))
        return ids, types, truncated

    def prepare(self, items: Sequence[Item]) -> Prepared:
        slots: dict[tuple[str, str], int] = {}
        index = np.empty((len(items), 3), dtype=np.int64)
        for i, (q, a, b) in enumerate(items):
            index[i, 0] = slots.setdefault(("query", q), len(slots))
            index[i, 1] = slots.setdefault(("passage", a), len(slots))
            index[i, 2] = slots.setdefault(("passage", b), len(slots))
        ids, types, truncated = self._encode(list(slots))
        return Prepared(
            n_items=len(items),
            input_ids=ids,
            token_type_ids=types,
            index=index,
            truncated_sequences=int(truncated.sum()),
            truncated_items=int(truncated[index].any(axis=1).sum()) if len(items) else 0,
            item_truncated=truncated[index].any(axis=1) if len(items) else np.zeros(0, dtype=bool),
        )

    def prepare_texts(self, texts: Sequence[str], role: str) -> Prepared:
        slots: dict[tuple[str, str], int] = {}
        index = np.fromiter((slots.setdefault((role, t), len(slots)) for t in texts), dtype=np.int64)
        ids, types, truncated = self._encode(list(slots))
        return Prepared(len(texts), ids, types, index, int(truncated.sum()), int(truncated[index].sum()))

    def prepare_scores(self, query: str, passages: Sequence[str]) -> Prepared:
        return self.prepare([(query, d, d) for d in passages])

    def postprocess_scores(self, prepared: Prepared, outputs: np.ndarray) -> np.ndarray:
        """cos(q, d) per passage."""
        emb = outputs.astype(np.float64)
        idx = prepared.index
        return np.einsum("ij,ij->i", emb[idx[:, 0]], emb[idx[:, 1]])

    def postprocess(self, prepared: Prepared, outputs: np.ndarray) -> np.ndarray:
        """Cosines of the distinct (query, passage) pairs only (k per query, not one per item)."""
        emb = outputs.astype(np.float64)
        idx = prepared.index
        n, width = len(idx), len(emb)
        keys = np.concatenate([idx[:, 0] * width + idx[:, 1], idx[:, 0] * width + idx[:, 2]])
        uniq, inverse = np.unique(keys, return_inverse=True)
        rows_q, rows_p = np.divmod(uniq, width)
        cos = np.einsum("ij,ij->i", emb[rows_q], emb[rows_p])[inverse.reshape(-1)]
        return sigmoid((cos[:n] - cos[n:]) / self.temperature)

    # --- export half ------------------------------------------------------------------------------
    @classmethod
    def describe(cls, source: Path, hf_tokenizer: Any, hf_config: Any, **options: Any) -> ModelSpec:
        from transformers import AutoModel

        from .torch_modules import accepts_token_types

        max_positions = getattr(hf_config, "max_position_embeddings", None)
        st_max = _st_max_seq_length(source)
        passage = options.get("max_passage_tokens") or min(
            cls.default_max_passage_tokens, (st_max or cls.default_max_passage_tokens + 2) - 2
        )
        inputs = ["input_ids", "attention_mask"]
        if accepts_token_types(AutoModel, hf_config):
            inputs.append("token_type_ids")
        return ModelSpec(
            kind=cls.name,
            inputs=tuple(inputs),
            output=cls.output,
            max_query_tokens=int(options.get("max_query_tokens") or cls.default_max_query_tokens),
            max_passage_tokens=int(passage),
            pad_token_id=int(hf_tokenizer.pad_token_id or 0),
            max_positions=int(max_positions) if max_positions else None,
            options={
                "temperature": float(options.get("temperature") or DEFAULT_TEMPERATURE),
                "pooling": _pooling(source),
                "embedding_dim": int(getattr(hf_config, "hidden_size", 0) or 0),
            },
        )

    @classmethod
    def torch_module(
        cls, source: Path, spec: ModelSpec, *, dtype: Any = None, attn_implementation: str = "eager"
    ):
        from .torch_modules import embedding_module

        return embedding_module(
            source,
            str(spec.options.get("pooling", "mean")),
            dtype=dtype,
            attn_implementation=attn_implementation,
        )
