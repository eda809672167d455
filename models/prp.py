"""Kind ``prp``: pairwise ranking prompting (Qin et al. 2023) with a causal LM.

The prompt (wrapped in the tokenizer's chat template when it has one, rendered once at export into the
manifest's ``prompt_template``) ends where the model names its answer; p = softmax over the next-token
logits of "A" and "B" at the last real token (right padding, the graph gathers that position), i.e.
sigmoid(logit(A) - logit(B)). Label tokens: "A"/"B" after a chat template's generation prompt, " A"/" B"
(space-prefixed, as they follow "...Output Passage A or Passage B:") without one; whichever variant is a
single token.

Caveat: a passage that contains the text of a chat-template special token (``<|assistant|>``) is encoded
as that special token, as with any tokenizer that parses special tokens in its input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import ModelSpec
from .prompt import PromptKind, check_template, label_token_id, render_chat_template

PRP_TEMPLATE = (
    'Given a query "{query}", which of the following two passages is more relevant to the query?\n\n'
    'Passage A: "{a}"\n\nPassage B: "{b}"\n\nOutput Passage A or Passage B:'
)


class Prp(PromptKind):
    name = "prp"
    default_template = PRP_TEMPLATE
    default_max_query_tokens = 64
    default_max_passage_tokens = 200
    export_options = frozenset({"prompt_template", "chat_template"})

    @classmethod
    def describe(cls, source: Path, hf_tokenizer: Any, hf_config: Any, **options: Any) -> ModelSpec:
        base = options.get("prompt_template") or PRP_TEMPLATE
        check_template(base)
        use_chat = options.get("chat_template")
        if use_chat is None:
            use_chat = bool(getattr(hf_tokenizer, "chat_template", None))
        template = render_chat_template(hf_tokenizer, base) if use_chat else base
        order = ("A", " A") if use_chat else (" A", "A")
        a_id = label_token_id(hf_tokenizer, order)
        b_id = label_token_id(hf_tokenizer, tuple(s.replace("A", "B") for s in order))
        pad = hf_tokenizer.pad_token_id
        if pad is None:
            pad = hf_tokenizer.eos_token_id if hf_tokenizer.eos_token_id is not None else 0
        max_positions = getattr(hf_config, "max_position_embeddings", None)
        return ModelSpec(
            kind=cls.name,
            inputs=("input_ids", "attention_mask"),
            output=cls.output,
            max_query_tokens=int(options.get("max_query_tokens") or cls.default_max_query_tokens),
            max_passage_tokens=int(options.get("max_passage_tokens") or cls.default_max_passage_tokens),
            pad_token_id=int(pad),
            max_positions=int(max_positions) if max_positions else None,
            options={
                "prompt_template": template,
                "base_prompt": base,
                "chat_template": bool(use_chat),
                # the rendered chat template already holds the BOS text; otherwise the post-processor adds it
                "add_special_tokens": not use_chat,
                "label_tokens": ["A", "B"],
                "label_token_ids": [a_id, b_id],
            },
        )

    @classmethod
    def torch_module(
        cls, source: Path, spec: ModelSpec, *, dtype: Any = None, attn_implementation: str = "eager"
    ):
        from .torch_modules import causal_module

        a_id, b_id = spec.options["label_token_ids"]
        return causal_module(source, a_id, b_id, dtype=dtype, attn_implementation=attn_implementation)
