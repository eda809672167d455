"""Kinds ``duo-t5`` and ``mono-t5``: T5 read out at the first decoder step, as pygaggle's DuoT5 / MonoT5.

duoT5: ``Query: {q} Document0: {a} Document1: {b} Relevant:`` followed by ``</s>``; p = softmax over the
logits of "▁false" and "▁true" at the first decoder step (decoder input = the start token), taken at
"true": p = sigmoid(logit(true) - logit(false)). monoT5: ``Query: {q} Document: {d} Relevant:``; the
candidate's score is logit(true) - logit(false) (the log-odds of pygaggle's P(true)), and p(a, b) =
sigmoid((s_a - s_b) / T) (see ``mono.py``). The exported graph is encoder + that one decoder step, no
generation loop. Truncation: pygaggle's whole-prompt cut at 512 tokens (``truncation="reference"``, the
default) or per-field budgets (``fields``), see ``prompt.py``.

Formulas and sources: docs/references.md#duot5-and-monot5.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .mono import DEFAULT_MONO_TEMPERATURE, MonoScoring, check_temperature
from .prompt import PromptKind, check_template, label_token_id, prompt_options
from .types import ModelSpec

DUO_T5_TEMPLATE = "Query: {query} Document0: {a} Document1: {b} Relevant:"
MONO_T5_TEMPLATE = "Query: {query} Document: {a} Relevant:"
SEQ2SEQ = ("AutoModelForSeq2SeqLM",)


def t5_label_ids(hf_tokenizer: Any) -> tuple[int, int]:
    """Ids of "▁true" and "▁false" (pygaggle's prediction tokens), or of whichever spelling is one token."""
    ids = []
    for word in ("true", "false"):
        piece = hf_tokenizer.convert_tokens_to_ids("▁" + word)
        if piece is None or piece == hf_tokenizer.unk_token_id:
            piece = label_token_id(hf_tokenizer, (word, " " + word))
        ids.append(int(piece))
    return ids[0], ids[1]


class T5Relevance(PromptKind):
    """Shared export half of the T5 relevance kinds (template, truncation, true/false labels)."""

    architectures: ClassVar[tuple[str, ...]] = SEQ2SEQ
    export_options = frozenset({"prompt_template", "truncation", "max_input_tokens"})

    @classmethod
    def extra_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    @classmethod
    def describe(cls, source: Path, hf_tokenizer: Any, hf_config: Any, **options: Any) -> ModelSpec:
        template = options.get("prompt_template") or cls.default_template
        check_template(template, cls.fields)
        true_id, false_id = t5_label_ids(hf_tokenizer)
        max_query, max_passage = cls.budgets(options)
        return ModelSpec(
            kind=cls.name,
            inputs=("input_ids", "attention_mask"),
            output=cls.output,
            max_query_tokens=max_query,
            max_passage_tokens=max_passage,
            pad_token_id=int(hf_tokenizer.pad_token_id or 0),
            max_positions=None,  # relative position buckets: no hard limit
            options={
                **prompt_options(cls, options, template),
                "add_special_tokens": True,
                "label_tokens": ["true", "false"],
                "label_token_ids": [true_id, false_id],
                **cls.extra_options(options),
            },
        )

    @classmethod
    def torch_module(
        cls, source: Path, spec: ModelSpec, *, dtype: Any = None, attn_implementation: str = "eager"
    ):
        from .torch_modules import seq2seq_module

        true_id, false_id = spec.options["label_token_ids"]
        return seq2seq_module(source, true_id, false_id, dtype=dtype, attn_implementation=attn_implementation)


class DuoT5(T5Relevance):
    name = "duo-t5"
    revision = 2  # 2: pygaggle's whole-prompt cut at 512 is the default truncation
    default_template = DUO_T5_TEMPLATE
    default_max_query_tokens = 62
    default_max_passage_tokens = 200


class MonoT5(MonoScoring, T5Relevance):
    name = "mono-t5"
    revision = 2  # 2: pygaggle's whole-prompt cut at 512 is the default truncation
    default_template = MONO_T5_TEMPLATE
    fields = ("query", "a")
    default_max_query_tokens = 64
    default_max_passage_tokens = 400
    export_options = T5Relevance.export_options | {"temperature"}

    def __init__(self, spec: ModelSpec, encoder: Any) -> None:
        super().__init__(spec, encoder)
        self.temperature = check_temperature(spec.options.get("temperature", DEFAULT_MONO_TEMPERATURE))

    @classmethod
    def extra_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"temperature": check_temperature(options.get("temperature") or DEFAULT_MONO_TEMPERATURE)}

    def encode_candidates(self, keys: Sequence[tuple[str, str]]) -> tuple[list[list[int]], None, np.ndarray]:
        ids, truncated = self.render([(q, d, d) for q, d in keys])
        return ids, None, truncated
