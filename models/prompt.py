"""Shared half of the prompt kinds (``duo-t5``, ``mono-t5``, ``prp``): a text template with ``{query}``,
``{a}``, ``{b}`` (mono kinds: ``{query}``, ``{a}`` only).

Truncation (``options.truncation`` in the manifest):
- ``reference`` (default): the kind's reference code's own rule (``Kind.reference_rule``):
  ``prompt`` (duoT5, monoT5: pygaggle): the whole rendered prompt is encoded and cut to ``max_input_tokens``
  from the end, the tokenizer's closing special tokens kept (pygaggle's ``truncation=True,
  max_length=512``); a long pair loses its second passage and the "Relevant:" cue.
  ``decoded-fields`` (prp: llm-rankers ``run.py``): before the prompt is built, the query and each passage
  are replaced by ``convert_tokens_to_string(tokenize(text)[:n])`` with n = ``max_query_tokens`` /
  ``max_passage_tokens`` (``--query_length``/``--passage_length``, both 128 there); the prompt itself is
  encoded whole, uncut (``compare()`` cuts nothing).
- ``fields`` (an explicit choice): each field is encoded alone and cut to its token budget at a token
  boundary (the kept text is the prefix up to the end offset of the last kept token); the template is then
  rendered with the kept texts and encoded whole. The template's own tokens come on top of the budgets;
  ``max_sequence_tokens`` adds a small slack for tokens that merge across a field boundary. Every prompt
  keeps its whole template, both passages and the answer cue ("Relevant:", "Output Passage A or Passage B:").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from .errors import ModelError
from .kind import TRUNCATIONS, Kind
from .types import Item, ModelSpec, Prepared

FIELDS = ("query", "a", "b")
BOUNDARY_SLACK = 8
DEFAULT_MAX_INPUT_TOKENS = 512  # pygaggle's max_length for duoT5 and monoT5
_SENTINELS = {"query": "\u2063RERANKQ\u2063", "a": "\u2063RERANKA\u2063", "b": "\u2063RERANKB\u2063"}


def check_template(template: str, fields: Sequence[str] = FIELDS) -> None:
    names = ", ".join("{" + f + "}" for f in fields)
    try:
        rendered = template.format(**{f: f"\0{f}" for f in FIELDS})
    except (KeyError, IndexError, ValueError) as exc:
        raise ModelError(f"prompt template must use only {names}: {exc}") from exc
    for f in FIELDS:
        if rendered.count(f"\0{f}") != (1 if f in fields else 0):
            raise ModelError(f"prompt template must contain {names} once each (and no other field)")


def check_truncation(value: str) -> str:
    if value not in TRUNCATIONS:
        raise ModelError(f"truncation must be one of {', '.join(TRUNCATIONS)}, got {value!r}")
    return value


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


def decoder_prefix_ids(hf_tokenizer: Any, prefix: str) -> list[int]:
    """The token ids of an encoder-decoder prompt's decoder prefix (``"<pad> Passage"`` for T5); an error when
    the tokenizer encodes it to nothing."""
    ids = [int(i) for i in hf_tokenizer.encode(prefix, add_special_tokens=False)]
    if not ids:
        raise ModelError(f"the decoder prefix {prefix!r} encodes to no tokens")
    return ids


def use_chat_template(hf_tokenizer: Any, asked: bool | None, source: Any) -> bool:
    """Whether a decoder-only prompt goes through the tokenizer's chat template: as ``asked``, else when the
    tokenizer has one; asking for it where there is none is an error naming ``source``."""
    has = bool(getattr(hf_tokenizer, "chat_template", None))
    use = has if asked is None else bool(asked)
    if use and not has:
        raise ModelError(f"{source}: the tokenizer has no chat template (export with chat_template off)")
    return use


def label_token_id(hf_tokenizer: Any, candidates: Sequence[str]) -> int:
    """The first candidate string that the tokenizer encodes as exactly one token."""
    for text in candidates:
        ids = hf_tokenizer.encode(text, add_special_tokens=False)
        if len(ids) == 1:
            return int(ids[0])
    raise ModelError(f"none of {list(candidates)} is a single token for this tokenizer")


class PromptKind(Kind):
    default_template: ClassVar[str]
    fields: ClassVar[tuple[str, ...]] = FIELDS
    measured_cpu_default: ClassVar[bool] = True  # every prompt kind: causal (prp) and seq2seq (duo-t5, ...)
    # how ``truncation="reference"`` cuts: "prompt" (pygaggle) or "decoded-fields" (llm-rankers)
    reference_rule: ClassVar[str] = "prompt"

    def __init__(self, spec: ModelSpec, encoder: Any) -> None:
        self.template = str(spec.options.get("prompt_template") or self.default_template)
        check_template(self.template, self.fields)
        self.add_special_tokens = bool(spec.options.get("add_special_tokens", True))
        # manifests written before the reference rule was the default record their truncation explicitly
        self.truncation = check_truncation(str(spec.options.get("truncation", "fields")))
        self.max_input_tokens = int(spec.options.get("max_input_tokens") or DEFAULT_MAX_INPUT_TOKENS)
        empty = self.template.format(query="", a="", b="")
        self.template_tokens = len(encoder.encode([empty], add_special_tokens=self.add_special_tokens)[0])
        # the closing special tokens the tokenizer adds (T5: </s>), kept when a prompt is cut
        self.closing = tuple(encoder.single.suffix) if self.add_special_tokens else ()
        super().__init__(spec, encoder)

    def max_sequence_tokens(self) -> int:
        s = self.spec
        if self.truncation == "reference" and self.reference_rule == "prompt":
            return self.max_input_tokens
        passages = (len(self.fields) - 1) * s.max_passage_tokens
        return self.template_tokens + s.max_query_tokens + passages + BOUNDARY_SLACK

    def render(self, items: Sequence[Item]) -> tuple[list[list[int]], np.ndarray]:
        """Token ids of each item's prompt and whether a text of it was cut."""
        if self.truncation == "reference" and self.reference_rule == "prompt":
            whole = self.encoder.encode(
                [self.template.format(query=q, a=a, b=b) for q, a, b in items],
                add_special_tokens=self.add_special_tokens,
            )
            keep = self.max_input_tokens - len(self.closing)
            cut = np.fromiter((len(ids) > self.max_input_tokens for ids in whole), dtype=bool, count=len(whole))
            ids = [[*seq[:keep], *self.closing] if c else seq for seq, c in zip(whole, cut, strict=True)]
            return ids, cut
        queries = list(dict.fromkeys(q for q, _, _ in items))
        passages = list(dict.fromkeys(x for _, a, b in items for x in (a, b)))
        cut = self.encoder.decoded_fields if self.truncation == "reference" else self.encoder.fields
        qf = dict(zip(queries, cut(queries, self.spec.max_query_tokens), strict=True))
        pf = dict(zip(passages, cut(passages, self.spec.max_passage_tokens), strict=True))
        prompts = []
        truncated = np.zeros(len(items), dtype=bool)
        for i, (q, a, b) in enumerate(items):
            fq, fa, fb = qf[q], pf[a], pf[b]
            truncated[i] = fq.truncated or fa.truncated or (fb.truncated and "b" in self.fields)
            prompts.append(self.template.format(query=fq.text, a=fa.text, b=fb.text))
        return self.encoder.encode(prompts, add_special_tokens=self.add_special_tokens), truncated

    def prepare(self, items: Sequence[Item]) -> Prepared:
        ids, truncated = self.render(items)
        n = int(truncated.sum())
        return Prepared(len(items), ids, None, None, n, n, item_truncated=truncated)


def prompt_options(kind: type[Kind], options: Mapping[str, Any], template: str) -> dict[str, Any]:
    """The truncation options every prompt kind records in its manifest."""
    truncation = kind.resolve_truncation(dict(options))
    max_input = int(options.get("max_input_tokens") or DEFAULT_MAX_INPUT_TOKENS)
    if max_input < 2:
        raise ModelError(f"max_input_tokens must be >= 2, got {max_input}")
    return {"prompt_template": template, "truncation": truncation, "max_input_tokens": max_input}
