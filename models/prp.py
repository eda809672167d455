"""Kind ``prp``: pairwise ranking prompting (Qin et al. 2023) read out as ielab/llm-rankers does.

Prompt (llm-rankers ``pairwise.py``): ``Given a query "{q}", which of the following two passages is more
relevant to the query?\\n\\nPassage A: "{a}"\\n\\nPassage B: "{b}"\\n\\nOutput Passage A or Passage B:``.
The reference generates the answer; we read the same position's next-token distribution and take p =
softmax over the logits of the two label tokens (p = sigmoid(logit(A) - logit(B))):

- decoder-only models: the prompt is one user turn of the tokenizer's chat template with the generation
  prompt (``chat_template``: on where the tokenizer has one; switchable), then the answer prefix
  ``" Passage:"`` is appended and the whole text is tokenized as the reference does
  (``tokenizer(prompt)``, i.e. with the tokenizer's own special tokens: a Llama tokenizer adds its BOS
  even though the chat template wrote one). The label is the token after "Passage:": " A"/" B".
- encoder-decoder models (T5, Flan-T5, Flan-UL2): the prompt is the encoder input (``</s>`` appended by
  the tokenizer), the decoder is primed with ``"<pad> Passage"`` (the reference's ``decoder_input_ids``)
  and the label is the next token, "▁A"/"▁B".

Before this read-out followed the reference, the answer was read right after the generation prompt,
where a chat model means to write "Passage" (SmolLM2's most likely token there was "Pass" in 47 of 48
prompts).

Caveat: a passage that contains the text of a chat-template special token (``<|assistant|>``) is encoded
as that special token, as with any tokenizer that parses special tokens in its input.

Formulas and sources: docs/references.md#prp.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .errors import ModelError
from .prompt import (
    PromptKind,
    check_template,
    decoder_prefix_ids,
    label_token_id,
    prompt_options,
    render_chat_template,
    use_chat_template,
)
from .types import ModelSpec

PRP_TEMPLATE = (
    'Given a query "{query}", which of the following two passages is more relevant to the query?\n\n'
    'Passage A: "{a}"\n\nPassage B: "{b}"\n\nOutput Passage A or Passage B:'
)
ANSWER_PREFIX = " Passage:"  # decoder-only: appended after the chat template's generation prompt
DECODER_PREFIX = "<pad> Passage"  # encoder-decoder: the decoder's primed input


def _label_ids(hf_tokenizer: Any) -> tuple[int, int]:
    """The label tokens that follow "Passage" / "Passage:": " A"/" B" where that is one token (BPE,
    sentencepiece "▁A"), else "A"/"B"."""
    return (
        label_token_id(hf_tokenizer, (" A", "A")),
        label_token_id(hf_tokenizer, (" B", "B")),
    )


class Prp(PromptKind):
    name = "prp"
    default_template = PRP_TEMPLATE
    default_max_query_tokens = 64  # ``truncation="fields"``
    default_max_passage_tokens = 200
    reference_max_query_tokens = 128  # llm-rankers run.py: --query_length 128, --passage_length 128
    reference_max_passage_tokens = 128
    reference_rule = "decoded-fields"
    reference_budgets = frozenset({"max_query_tokens", "max_passage_tokens"})
    architectures: ClassVar[tuple[str, ...]] = ("AutoModelForCausalLM", "AutoModelForSeq2SeqLM")
    # 2: the label read after " Passage:" (llm-rankers), not right after the generation prompt;
    # 3: llm-rankers' truncation (run.py ``ranker.truncate`` of each field to 128 tokens) is the default
    revision = 3
    export_options = frozenset({"prompt_template", "chat_template", "answer_prefix", "truncation"})

    @classmethod
    def describe(cls, source: Path, hf_tokenizer: Any, hf_config: Any, **options: Any) -> ModelSpec:
        base = options.get("prompt_template") or PRP_TEMPLATE
        check_template(base)
        seq2seq = bool(getattr(hf_config, "is_encoder_decoder", False))
        max_positions = getattr(hf_config, "max_position_embeddings", None)
        if seq2seq:
            if options.get("chat_template"):
                raise ModelError("prp on an encoder-decoder model takes no chat template")
            prefix = options.get("answer_prefix")
            prefix_text = DECODER_PREFIX if prefix is None else prefix
            decoder_ids = decoder_prefix_ids(hf_tokenizer, prefix_text)
            template, use_chat, extra = base, False, {"decoder_prefix": prefix_text, "decoder_ids": decoder_ids}
            max_positions = None  # T5: relative position buckets
        else:
            use_chat = use_chat_template(hf_tokenizer, options.get("chat_template"), source)
            prefix = ANSWER_PREFIX if options.get("answer_prefix") is None else options["answer_prefix"]
            rendered = render_chat_template(hf_tokenizer, base) if use_chat else base
            template = rendered + prefix.replace("{", "{{").replace("}", "}}")
            extra = {"answer_prefix": prefix}
        a_id, b_id = _label_ids(hf_tokenizer)
        pad = hf_tokenizer.pad_token_id
        max_query, max_passage = cls.budgets(options)
        if pad is None:
            pad = hf_tokenizer.eos_token_id if hf_tokenizer.eos_token_id is not None else 0
        return ModelSpec(
            kind=cls.name,
            inputs=("input_ids", "attention_mask"),
            output=cls.output,
            max_query_tokens=max_query,
            max_passage_tokens=max_passage,
            pad_token_id=int(pad),
            max_positions=int(max_positions) if max_positions else None,
            options={
                **prompt_options(cls, options, template),
                "base_prompt": base,
                "revision": cls.revision,
                "architecture": "encoder-decoder" if seq2seq else "decoder-only",
                "chat_template": bool(use_chat),
                # llm-rankers tokenizes the rendered prompt with the tokenizer's own special tokens
                "add_special_tokens": True,
                "label_tokens": ["A", "B"],
                "label_token_ids": [a_id, b_id],
                **extra,
            },
        )

    @classmethod
    def torch_module(
        cls, source: Path, spec: ModelSpec, *, dtype: Any = None, attn_implementation: str = "eager"
    ):
        from .torch_modules import causal_module, seq2seq_module

        a_id, b_id = spec.options["label_token_ids"]
        if spec.options.get("architecture") == "encoder-decoder":
            return seq2seq_module(
                source, a_id, b_id, prefix=spec.options["decoder_ids"], dtype=dtype,
                attn_implementation=attn_implementation,
            )
        return causal_module(source, a_id, b_id, dtype=dtype, attn_implementation=attn_implementation)
