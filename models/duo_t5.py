"""Kind ``duo-t5``: seq2seq over ``Query: {q} Document0: {a} Document1: {b} Relevant:``.

p = softmax(logit("true"), logit("false"))["true"] at the first decoder step (decoder input = the start
token). The exported graph is encoder + that one decoder step, no generation loop; its output is
logit(true) - logit(false), and p = sigmoid of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import ModelSpec
from .prompt import PromptKind, check_template, label_token_id

DUO_T5_TEMPLATE = "Query: {query} Document0: {a} Document1: {b} Relevant:"


class DuoT5(PromptKind):
    name = "duo-t5"
    default_template = DUO_T5_TEMPLATE
    default_max_query_tokens = 62
    default_max_passage_tokens = 200
    export_options = frozenset({"prompt_template"})

    @classmethod
    def describe(cls, source: Path, hf_tokenizer: Any, hf_config: Any, **options: Any) -> ModelSpec:
        template = options.get("prompt_template") or DUO_T5_TEMPLATE
        check_template(template)
        true_id = label_token_id(hf_tokenizer, ("true", " true", "▁true"))
        false_id = label_token_id(hf_tokenizer, ("false", " false", "▁false"))
        return ModelSpec(
            kind=cls.name,
            inputs=("input_ids", "attention_mask"),
            output=cls.output,
            max_query_tokens=int(options.get("max_query_tokens") or cls.default_max_query_tokens),
            max_passage_tokens=int(options.get("max_passage_tokens") or cls.default_max_passage_tokens),
            pad_token_id=int(hf_tokenizer.pad_token_id or 0),
            max_positions=None,  # relative position buckets: no hard limit
            options={
                "prompt_template": template,
                "add_special_tokens": True,
                "label_tokens": ["true", "false"],
                "label_token_ids": [true_id, false_id],
            },
        )

    @classmethod
    def torch_module(
        cls, source: Path, spec: ModelSpec, *, dtype: Any = None, attn_implementation: str = "eager"
    ):
        from .torch_modules import seq2seq_module

        true_id, false_id = spec.options["label_token_ids"]
        return seq2seq_module(source, true_id, false_id, dtype=dtype, attn_implementation=attn_implementation)
