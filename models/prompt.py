"""Shared half of the prompt kinds (``duo-t5``, ``prp``): a text template with ``{query}``, ``{a}``, ``{b}``.

Truncation: each field is encoded alone and cut to its token budget at a token boundary (the kept text is
the prefix up to the end offset of the last kept token); the template is then rendered with the kept texts
and encoded whole, so the model sees the tokenization it would see for that prompt. The template's own
tokens come on top of the budgets; ``max_sequence_tokens`` adds a small slack for tokens that merge across
a field boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .base import Item, Kind, ModelSpec, Prepared
from .errors import ModelError

FIELDS = ("query", "a", "b")
BOUNDARY_SLACK = 8
_SENTINELS = {"query": "\u2063RERANKQ\u2063", "a": "\u2063RERANKA\u2063", "b": "\u2063RERANKB\u2063"}


def check_template(template: str) -> None:
    try:
        rendered = template.format(query="\0q", a="\0a", b="\0b")
    except (KeyError, IndexError, ValueError) as exc:
        raise ModelError(f"prompt template must use only {{query}}, {{a}}, {{b}}: {exc}") from exc
    for f in ("\0q", "\0a", "\0b"):
        if rendered.count(f) != 1:
            raise ModelError("prompt template must contain {query}, {a} and {b} once each")


def render_chat_template(hf_tokenizer: Any, template: str) -> str:
    """Wrap ``template`` in the tokenizer's chat template (one user turn plus the generation prompt)."""
    content = template.format(**_SENTINELS)
    text = hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    if not isinstance(text, str):
        raise ModelError("apply_chat_template(tokenize=False) did not return a string")
    text = text.replace("{", "{{").replace("}", "}}")
    for name, sentinel in _SENTINELS.items():
        if text.count(sentinel) != 1:
            raise ModelError("the chat template dropped or repeated a prompt field")
        text = text.replace(sentinel, "{" + name + "}")
    return text


def label_token_id(hf_tokenizer: Any, candidates: Sequence[str]) -> int:
    """The first candidate string that the tokenizer encodes as exactly one token."""
    for text in candidates:
        ids = hf_tokenizer.encode(text, add_special_tokens=False)
        if len(ids) == 1:
            return int(ids[0])
    raise ModelError(f"none of {list(candidates)} is a single token for this tokenizer")


class PromptKind(Kind):
    default_template: ClassVar[str]
    measured_cpu_default: ClassVar[bool] = True  # every prompt kind: causal (prp) and seq2seq (duo-t5, ...)

    def __init__(self, spec: ModelSpec, encoder: Any) -> None:
        self.template = str(spec.options.get("prompt_template") or self.default_template)
        check_template(self.template)
        self.add_special_tokens = bool(spec.options.get("add_special_tokens", True))
        empty = self.template.format(query="", a="", b="")
        self.template_tokens = len(encoder.encode([empty], add_special_tokens=self.add_special_tokens)[0])
        super().__init__(spec, encoder)

    def max_sequence_tokens(self) -> int:
        s = self.spec
        return self.template_tokens + s.max_query_tokens + 2 * s.max_passage_tokens + BOUNDARY_SLACK

    def prepare(self, items: Sequence[Item]) -> Prepared:
        queries = list(dict.fromkeys(q for q, _, _ in items))
        passages = list(dict.fromkeys(x for _, a, b in items for x in (a, b)))
        qf = dict(zip(queries, self.encoder.fields(queries, self.spec.max_query_tokens), strict=True))
        pf = dict(zip(passages, self.encoder.fields(passages, self.spec.max_passage_tokens), strict=True))
        prompts = []
        truncated = np.zeros(len(items), dtype=bool)
        for i, (q, a, b) in enumerate(items):
            fq, fa, fb = qf[q], pf[a], pf[b]
            truncated[i] = fq.truncated or fa.truncated or fb.truncated
            prompts.append(self.template.format(query=fq.text, a=fa.text, b=fb.text))
        ids = self.encoder.encode(prompts, add_special_tokens=self.add_special_tokens)
        n = int(truncated.sum())
        return Prepared(len(items), ids, None, None, n, n)
