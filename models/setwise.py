"""Kind ``setwise``: Setwise prompting (Zhuang et al. 2024) read out as ielab/llm-rankers does.

Reference: ielab/llm-rankers ``llmrankers/setwise.py`` (``SetwiseLlmRanker.compare``, commit b36517bf). One call
shows K passages labelled A, B, C, ... (``CHARACTERS``) in one prompt:

    Given a query "{query}", which of the following passages is the most relevant one to the query?\\n\\n
    Passage A: "{doc A}"\\n\\nPassage B: "{doc B}" ...\\n\\nOutput only the passage label of the most relevant passage:

- encoder-decoder (Flan-T5): ``tokenizer(prompt)`` (``</s>`` appended) is the encoder input, the decoder is primed
  with ``"<pad> Passage"``'s ids, and the reference's ``likelihood`` scoring takes the softmax over the whole
  vocabulary at the next position and the probabilities of the K label tokens (the last token of
  ``"<pad> Passage X"``); the passage of highest probability wins. We output the K label logits; their softmax is
  the reference's K probabilities renormalised (the same order, the same winner).
- decoder-only chat models: the prompt is one user turn of the tokenizer's chat template with the generation
  prompt, then ``" Passage:"`` is appended, tokenized with the tokenizer's own special tokens; the reference
  generates one token greedily (its ``generation`` scoring, the only one it runs for these models) and reads it as
  the label. We read the same position's logits of the K label tokens (" A", " B", ...): the argmax over them is
  the generated label whenever the model's greedy token is a label (when it is not, llm-rankers falls back to
  the first passage and prints "Unexpected output").

Truncation: llm-rankers cuts the query and each passage to a token budget (``run.py``: ``ranker.truncate``,
``--query_length`` and ``--passage_length``, 128 each by default), as the ``fields`` truncation here does.

One call gives a distribution over its K passages (:meth:`Setwise.prepare_sets`, ``PairwiseModel.compare_sets``);
a pairwise item (q, a, b) is the call with K = 2 and p(a, b) its first label's probability, so the kind also
serves every pairwise path (export parity checks, ``rerank rank``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .errors import ModelError
from .kind import Kind
from .prompt import BOUNDARY_SLACK, decoder_prefix_ids, label_token_id, use_chat_template
from .types import Item, ModelSpec, Prepared

CHARACTERS = ("A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L",
              "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W")
HEAD = 'Given a query "{query}", which of the following passages is the most relevant one to the query?\n\n'
PASSAGE = 'Passage {label}: "{text}"'
TAIL = "\n\nOutput only the passage label of the most relevant passage:"
ANSWER_PREFIX = " Passage:"  # decoder-only: appended after the chat template's generation prompt
DECODER_PREFIX = "<pad> Passage"  # encoder-decoder: the decoder's primed input
DEFAULT_MAX_K = 10
_CONTENT = "\u2063RERANKCONTENT\u2063"


def setwise_prompt(query: str, passages: Sequence[str]) -> str:
    """llm-rankers' setwise prompt (the user turn) for ``passages`` in label order."""
    body = "\n\n".join(PASSAGE.format(label=CHARACTERS[i], text=t) for i, t in enumerate(passages))
    return HEAD.format(query=query) + body + TAIL


def _chat_parts(hf_tokenizer: Any) -> tuple[str, str]:
    """The chat template's text before and after one user turn's content (with the generation prompt)."""
    text = hf_tokenizer.apply_chat_template([{"role": "user", "content": _CONTENT}], add_generation_prompt=True,
                                            tokenize=False)
    if not isinstance(text, str) or text.count(_CONTENT) != 1:
        raise ModelError("the chat template dropped or repeated the prompt")
    before, after = text.split(_CONTENT)
    return before, after


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = np.exp(x - x.max(axis=-1, keepdims=True))
    return x / x.sum(axis=-1, keepdims=True)


class Setwise(Kind):
    name = "setwise"
    output = "label_logits"
    default_max_query_tokens = 128  # llm-rankers run.py --query_length
    default_max_passage_tokens = 128  # llm-rankers run.py --passage_length
    architectures: ClassVar[tuple[str, ...]] = ("AutoModelForCausalLM", "AutoModelForSeq2SeqLM")
    export_options = frozenset({"chat_template", "answer_prefix", "max_k"})

    def __init__(self, spec: ModelSpec, encoder: Any) -> None:
        options = spec.options
        self.max_k = int(options.get("max_k") or DEFAULT_MAX_K)
        self.before = str(options.get("chat_before", ""))
        self.after = str(options.get("chat_after", "")) + str(options.get("answer_prefix", ""))
        empty = self._wrap(setwise_prompt("", [""] * self.max_k))
        self.template_tokens = len(encoder.encode([empty], add_special_tokens=True)[0])
        super().__init__(spec, encoder)

    def _wrap(self, content: str) -> str:
        return self.before + content + self.after

    def max_sequence_tokens(self) -> int:
        s = self.spec
        return self.template_tokens + s.max_query_tokens + self.max_k * s.max_passage_tokens + BOUNDARY_SLACK

    def prepare_sets(self, queries: Sequence[str], groups: Sequence[Sequence[str]]) -> Prepared:
        """One prompt per group (its passages in label order) for the query beside it; ``Prepared.index``
        holds each group's K (set mode for :meth:`postprocess`)."""
        sizes = [len(g) for g in groups]
        if any(not 2 <= k <= self.max_k for k in sizes):
            raise ModelError(f"a setwise call shows 2 to {self.max_k} passages (max_k), got {sizes}")
        qs = list(dict.fromkeys(queries))
        ps = list(dict.fromkeys(p for g in groups for p in g))
        qf = dict(zip(qs, self.encoder.fields(qs, self.spec.max_query_tokens), strict=True))
        pf = dict(zip(ps, self.encoder.fields(ps, self.spec.max_passage_tokens), strict=True))
        prompts, truncated = [], np.zeros(len(groups), dtype=bool)
        for i, (q, group) in enumerate(zip(queries, groups, strict=True)):
            truncated[i] = qf[q].truncated or any(pf[p].truncated for p in group)
            prompts.append(self._wrap(setwise_prompt(qf[q].text, [pf[p].text for p in group])))
        ids = self.encoder.encode(prompts, add_special_tokens=True)
        n = int(truncated.sum())
        return Prepared(len(groups), ids, None, np.asarray(sizes, dtype=np.int64), n, n, item_truncated=truncated)

    def prepare(self, items: Sequence[Item]) -> Prepared:
        """Pairwise items as setwise calls of K = 2 (a in slot A); ``index`` None marks pairwise mode."""
        prepared = self.prepare_sets([q for q, _, _ in items], [(a, b) for _, a, b in items])
        return Prepared(prepared.n_items, prepared.input_ids, None, None, prepared.truncated_sequences,
                        prepared.truncated_items, item_truncated=prepared.item_truncated)

    def postprocess(self, prepared: Prepared, outputs: np.ndarray) -> np.ndarray:
        """Pairwise mode: p(a, b) = softmax over the labels A, B, A's share. Set mode: every group's softmax over
        its K label logits, concatenated (split them by ``prepared.index``)."""
        logits = np.asarray(outputs).reshape(len(prepared.input_ids), -1)
        if prepared.index is None:
            return softmax_rows(logits[:, :2])[:, 0]
        return np.concatenate([softmax_rows(row[:k]) for row, k in zip(logits, prepared.index, strict=True)])

    # --- export half ------------------------------------------------------------------------------
    @classmethod
    def describe(cls, source: Path, hf_tokenizer: Any, hf_config: Any, **options: Any) -> ModelSpec:
        max_k = int(options.get("max_k") or DEFAULT_MAX_K)
        if not 2 <= max_k <= len(CHARACTERS):
            raise ModelError(f"max_k must be between 2 and {len(CHARACTERS)} (llm-rankers' labels), got {max_k}")
        labels = CHARACTERS[:max_k]
        seq2seq = bool(getattr(hf_config, "is_encoder_decoder", False))
        max_positions = getattr(hf_config, "max_position_embeddings", None)
        extra: dict[str, Any]
        if seq2seq:
            if options.get("chat_template"):
                raise ModelError("setwise on an encoder-decoder model takes no chat template")
            prefix = DECODER_PREFIX if options.get("answer_prefix") is None else options["answer_prefix"]
            decoder_ids = decoder_prefix_ids(hf_tokenizer, prefix)
            # the reference: the last token of "<pad> Passage X" for each label X
            label_ids = [int(hf_tokenizer.encode(f"{prefix} {c}", add_special_tokens=False)[-1]) for c in labels]
            extra = {"decoder_prefix": prefix, "decoder_ids": decoder_ids, "chat_before": "", "chat_after": "",
                     "answer_prefix": ""}
            max_positions = None  # T5: relative position buckets
        else:
            use_chat = use_chat_template(hf_tokenizer, options.get("chat_template"), source)
            before, after = _chat_parts(hf_tokenizer) if use_chat else ("", "")
            prefix = ANSWER_PREFIX if options.get("answer_prefix") is None else options["answer_prefix"]
            label_ids = [label_token_id(hf_tokenizer, (f" {c}", c)) for c in labels]
            extra = {"chat_before": before, "chat_after": after, "answer_prefix": prefix}
        if len(set(label_ids)) != len(label_ids):
            raise ModelError("two passage labels share a token for this tokenizer")
        pad = hf_tokenizer.pad_token_id
        if pad is None:
            pad = hf_tokenizer.eos_token_id if hf_tokenizer.eos_token_id is not None else 0
        return ModelSpec(
            kind=cls.name,
            inputs=("input_ids", "attention_mask"),
            output=cls.output,
            max_query_tokens=int(options.get("max_query_tokens") or cls.default_max_query_tokens),
            max_passage_tokens=int(options.get("max_passage_tokens") or cls.default_max_passage_tokens),
            pad_token_id=int(pad),
            max_positions=int(max_positions) if max_positions else None,
            options={
                "revision": cls.revision,
                "architecture": "encoder-decoder" if seq2seq else "decoder-only",
                "chat_template": bool(extra["chat_before"] or extra["chat_after"]),
                "truncation": "fields",
                "max_k": max_k,
                "label_tokens": list(labels),
                "label_token_ids": label_ids,
                **extra,
            },
        )

    @classmethod
    def torch_module(
        cls, source: Path, spec: ModelSpec, *, dtype: Any = None, attn_implementation: str = "eager"
    ):
        """The graph: the K label logits at the read-out position, ``[batch, max_k]`` (``label_logits``)."""
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        from .torch_modules import _load

        causal_cls, seq2seq_cls = _module_classes()
        label_ids = [int(i) for i in spec.options["label_token_ids"]]
        if spec.options.get("architecture") == "encoder-decoder":
            model = _load(AutoModelForSeq2SeqLM, source, dtype, attn_implementation)
            return seq2seq_cls(model, spec.options["decoder_ids"], label_ids).eval()
        model = _load(AutoModelForCausalLM, source, dtype, attn_implementation)
        return causal_cls(model, label_ids).eval()


@functools.cache
def _module_classes() -> tuple[type, type]:
    """The torch wrapper modules of the kind (built on first use: the runtime path imports no torch)."""
    import torch

    from .torch_modules import CausalLastTokenModule, Seq2SeqLabelModule

    class CausalLabelsModule(CausalLastTokenModule):
        """Hidden state at the last real token times every label's output-embedding row: ``[batch, K]``. No
        shared-prefix path (the runtime's reads one value per sequence)."""

        def __init__(self, model: Any, label_ids: list[int]) -> None:
            super().__init__(model, label_ids[0], label_ids[1])
            head = model.get_output_embeddings()
            self.label_weight = head.weight.detach()[label_ids].clone()
            bias = getattr(head, "bias", None)
            self.label_bias = None if bias is None else bias.detach()[label_ids].clone()
            self.shares_prefixes = False

        def _readout(self, hidden, lengths):
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            logits = (hidden[rows, lengths - 1] @ self.label_weight.t()).float()
            return logits if self.label_bias is None else logits + self.label_bias.float()

    class Seq2SeqLabelsModule(Seq2SeqLabelModule):
        """Encoder + one decoder pass over the primed prefix -> the logits of every label: ``[batch, K]``."""

        def __init__(self, model: Any, prefix: list[int], label_ids: list[int]) -> None:
            super().__init__(model, prefix, label_ids[0], label_ids[1])
            self.register_buffer("label_ids", torch.tensor(label_ids, dtype=torch.long))

        def forward(self, input_ids, attention_mask):
            decoder = self.prefix.unsqueeze(0).expand(input_ids.shape[0], -1)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder,
                             use_cache=False)
            return out.logits[:, -1, :].float()[:, self.label_ids]

    return CausalLabelsModule, Seq2SeqLabelsModule
