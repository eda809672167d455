"""Kind ``duo-cross-encoder``: a sequence classifier over ``[CLS] q [SEP] a [SEP] b [SEP]``.

Input layout. BERT-style encoders have two token types, so the default is the tokenizer's own pair
encoding of (q, "a [SEP] b"): the query is segment A (type 0), both passages are segment B (type 1),
separated by the tokenizer's pair separator (``[SEP]`` for BERT, ``</s></s>`` for RoBERTa). A model whose
type vocabulary has three or more entries (duoBERT-style checkpoints trained with a third segment) gets
the 3-segment input: q type 0, a type 1, b type 2. The choice is recorded in the manifest
(``options.segment_types``) and can be forced at export with ``segments=2|3``.

Each field is encoded alone and cut to its budget (query ``max_query_tokens``, each passage
``max_passage_tokens``), so both passages always fit. p = sigmoid(logit) for a single-logit head and
softmax(logits)[1] = sigmoid(logit1 - logit0) for a two-logit head; the graph outputs that log-odds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import Item, Kind, ModelSpec, Prepared
from .errors import ModelError


class DuoCrossEncoder(Kind):
    name = "duo-cross-encoder"
    default_max_query_tokens = 62  # duoBERT: 62 + 2 * 223 + 3 special tokens = 511
    default_max_passage_tokens = 223
    export_options = frozenset({"segments"})

    def __init__(self, spec: ModelSpec, encoder: Any) -> None:
        if encoder.pair is None:
            raise ModelError("duo-cross-encoder needs a tokenizer with a pair template (post-processor)")
        super().__init__(spec, encoder)
        types = spec.options.get("segment_types")
        lay = encoder.pair
        self.types = tuple(int(t) for t in types) if types else (lay.type_x, lay.type_y, lay.type_y)

    def max_sequence_tokens(self) -> int:
        lay = self.encoder.pair
        special = len(lay.prefix) + 2 * len(lay.middle) + len(lay.suffix)
        return special + self.spec.max_query_tokens + 2 * self.spec.max_passage_tokens

    def prepare(self, items: Sequence[Item]) -> Prepared:
        lay = self.encoder.pair
        tq, ta, tb = self.types
        queries = list(dict.fromkeys(q for q, _, _ in items))
        passages = list(dict.fromkeys(x for _, a, b in items for x in (a, b)))
        qf = dict(zip(queries, self.encoder.fields(queries, self.spec.max_query_tokens), strict=True))
        pf = dict(zip(passages, self.encoder.fields(passages, self.spec.max_passage_tokens), strict=True))
        ids: list[list[int]] = []
        types: list[list[int]] = []
        truncated = np.zeros(len(items), dtype=bool)
        for i, (q, a, b) in enumerate(items):
            fq, fa, fb = qf[q], pf[a], pf[b]
            truncated[i] = fq.truncated or fa.truncated or fb.truncated
            ids.append([*lay.prefix, *fq.ids, *lay.middle, *fa.ids, *lay.middle, *fb.ids, *lay.suffix])
            types.append(
                [
                    *lay.prefix_types,
                    *([tq] * len(fq.ids)),
                    *lay.middle_types,
                    *([ta] * len(fa.ids)),
                    *([ta] * len(lay.middle)),
                    *([tb] * len(fb.ids)),
                    *([tb] * len(lay.suffix)),
                ]
            )
        n = int(truncated.sum())
        return Prepared(len(items), ids, types, None, n, n)

    # --- export half ------------------------------------------------------------------------------
    @classmethod
    def describe(cls, source: Path, hf_tokenizer: Any, hf_config: Any, **options: Any) -> ModelSpec:
        from transformers import AutoModelForSequenceClassification

        from .torch_modules import accepts_token_types

        num_labels = int(getattr(hf_config, "num_labels", 1))
        if num_labels not in (1, 2):
            raise ModelError(f"duo-cross-encoder needs a 1- or 2-logit head, {source} has {num_labels}")
        inputs = ["input_ids", "attention_mask"]
        use_types = accepts_token_types(AutoModelForSequenceClassification, hf_config)
        if use_types:
            inputs.append("token_type_ids")
        type_vocab = int(getattr(hf_config, "type_vocab_size", 0) or 0)
        segments = int(options.get("segments") or (3 if type_vocab >= 3 else 2))
        if segments == 3 and type_vocab < 3:
            raise ModelError(f"3-segment input needs type_vocab_size >= 3, {source} has {type_vocab}")
        segment_types = [0, 1, 2] if segments == 3 else None  # None: the tokenizer's pair layout
        max_positions = getattr(hf_config, "max_position_embeddings", None)
        return ModelSpec(
            kind=cls.name,
            inputs=tuple(inputs),
            output=cls.output,
            max_query_tokens=int(options.get("max_query_tokens") or cls.default_max_query_tokens),
            max_passage_tokens=int(options.get("max_passage_tokens") or cls.default_max_passage_tokens),
            pad_token_id=int(hf_tokenizer.pad_token_id or 0),
            max_positions=int(max_positions) if max_positions else None,
            options={"num_labels": num_labels, "segments": segments, "segment_types": segment_types},
        )

    @classmethod
    def torch_module(
        cls, source: Path, spec: ModelSpec, *, dtype: Any = None, attn_implementation: str = "eager"
    ):
        from .torch_modules import classifier_module

        return classifier_module(source, dtype=dtype, attn_implementation=attn_implementation)
