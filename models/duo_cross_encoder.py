"""Kinds ``duo-cross-encoder`` (duoBERT) and ``mono-cross-encoder`` (monoBERT, ms-marco cross-encoders,
bge-reranker): sequence classifiers.

duo: ``[CLS] q [SEP] a [SEP] b [SEP]``. BERT-style encoders have two token types, so the default is the
tokenizer's own pair encoding of (q, "a [SEP] b"): the query is segment A (type 0), both passages are
segment B (type 1), separated by the tokenizer's pair separator (``[SEP]`` for BERT, ``</s></s>`` for
RoBERTa). A model whose type vocabulary has three or more entries (duoBERT, trained with a third segment)
gets duoBERT's layout: ``[CLS] q [SEP]`` type 0, ``a [SEP]`` type 1, ``b [SEP]`` type 2. The choice is
recorded in the manifest (``options.segment_types``) and can be forced at export with ``segments=2|3``.
Truncation ``reference`` (default) is duoBERT's (``convert_msmarco_to_duobert_tfrecord.py`` and
``tokenization.convert_to_bert_input``): the query keeps at most ``max_query_tokens`` = 62 word pieces
(``max_query_length`` 64 less ``[CLS]`` and ``[SEP]``), and each passage at most
``(max_input_tokens - len(query_ids)) // 2 - 2`` (``query_ids`` = the query with its special tokens,
``max_input_tokens`` = ``max_seq_length`` 512): a short query leaves each passage up to 252 pieces.
``fields`` cuts each field to fixed budgets (62 / 223 / 223). p = P(class 1): sigmoid(logit) for a
single-logit head, softmax(logits)[1] = sigmoid(logit1 - logit0) for a two-logit head; the graph outputs
that log-odds.

mono: the tokenizer's pair encoding of (q, d), one score per candidate (the same log-odds), p(a, b) =
sigmoid((s_a - s_b) / T) (``mono.py``). Truncation ``reference`` (default): sentence-transformers'
CrossEncoder, ``tokenizer(q.strip(), d.strip(), truncation="longest_first", max_length=None)``, i.e. the
tokenizer's longest-first rule at its ``model_max_length`` (recorded as ``max_input_tokens`` at export;
512 for the ms-marco cross-encoders and monoBERT); ``fields``: per-field budgets (64 / 445).

Formulas and sources: docs/references.md#duobert-and-cross-encoders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .errors import ModelError
from .kind import Kind
from .mono import DEFAULT_MONO_TEMPERATURE, MonoScoring, check_temperature
from .prompt import DEFAULT_MAX_INPUT_TOKENS, check_truncation
from .types import Item, ModelSpec, Prepared

CLASSIFIER = ("AutoModelForSequenceClassification",)


def longest_first(n1: int, n2: int, room: int) -> tuple[int, int]:
    """Kept lengths of a pair under the tokenizers library's longest-first rule (``room`` = max_length
    minus the special tokens): only the longer is cut while the shorter fits half, else both to half."""
    if n1 + n2 <= room:
        return n1, n2
    short, long_ = min(n1, n2), max(n1, n2)
    long_ = short if short > room else max(short, room - short)
    if short + long_ > room:
        short, long_ = room // 2, room // 2 + room % 2
    return (short, long_) if n1 <= n2 else (long_, short)


class CrossEncoder(Kind):
    """Shared export half: a 1- or 2-logit sequence classifier, its token types and budgets."""

    architectures: ClassVar[tuple[str, ...]] = CLASSIFIER

    def __init__(self, spec: ModelSpec, encoder: Any) -> None:
        if encoder.pair is None:
            raise ModelError(f"{self.name} needs a tokenizer with a pair template (post-processor)")
        super().__init__(spec, encoder)

    @classmethod
    def kind_options(cls, options: dict[str, Any], type_vocab: int, source: Path, max_input: int) -> dict[str, Any]:
        return {}

    @classmethod
    def truncation_options(cls, options: dict[str, Any], max_input: int) -> dict[str, Any]:
        """``truncation`` (default ``reference``) and the reference's whole-input length."""
        return {
            "truncation": cls.resolve_truncation(options),
            "max_input_tokens": int(options.get("max_input_tokens") or max_input),
        }

    @classmethod
    def describe(cls, source: Path, hf_tokenizer: Any, hf_config: Any, **options: Any) -> ModelSpec:
        from transformers import AutoModelForSequenceClassification

        from .torch_modules import accepts_token_types

        num_labels = int(getattr(hf_config, "num_labels", 1))
        if num_labels not in (1, 2):
            raise ModelError(f"{cls.name} needs a 1- or 2-logit head, {source} has {num_labels}")
        inputs = ["input_ids", "attention_mask"]
        if accepts_token_types(AutoModelForSequenceClassification, hf_config):
            inputs.append("token_type_ids")
        type_vocab = int(getattr(hf_config, "type_vocab_size", 0) or 0)
        max_positions = getattr(hf_config, "max_position_embeddings", None)
        max_query, max_passage = cls.budgets(options)
        return ModelSpec(
            kind=cls.name,
            inputs=tuple(inputs),
            output=cls.output,
            max_query_tokens=max_query,
            max_passage_tokens=max_passage,
            pad_token_id=int(hf_tokenizer.pad_token_id or 0),
            max_positions=int(max_positions) if max_positions else None,
            options={"num_labels": num_labels,
                     **cls.kind_options(options, type_vocab, source, cls.reference_length(hf_tokenizer))},
        )

    @classmethod
    def reference_length(cls, hf_tokenizer: Any) -> int:
        return DEFAULT_MAX_INPUT_TOKENS

    @classmethod
    def torch_module(
        cls, source: Path, spec: ModelSpec, *, dtype: Any = None, attn_implementation: str = "eager"
    ):
        from .torch_modules import classifier_module

        return classifier_module(source, dtype=dtype, attn_implementation=attn_implementation)


class DuoCrossEncoder(CrossEncoder):
    name = "duo-cross-encoder"
    default_max_query_tokens = 62  # duoBERT: max_query_length 64 less [CLS] and [SEP]
    default_max_passage_tokens = 223  # ``fields``: 62 + 2 * 223 + 4 special tokens = 512
    revision = 2  # 2: duoBERT's query-dependent passage length is the default truncation
    reference_budgets = frozenset({"max_query_tokens"})
    export_options = frozenset({"segments", "truncation", "max_input_tokens"})

    def __init__(self, spec: ModelSpec, encoder: Any) -> None:
        super().__init__(spec, encoder)
        types = spec.options.get("segment_types")
        lay = encoder.pair
        self.types = tuple(int(t) for t in types) if types else (lay.type_x, lay.type_y, lay.type_y)

    @property
    def truncation(self) -> str:
        # manifests written before the reference rule was the default record no truncation: fields
        return check_truncation(str(self.spec.options.get("truncation", "fields")))

    @property
    def max_input_tokens(self) -> int:
        return int(self.spec.options.get("max_input_tokens") or DEFAULT_MAX_INPUT_TOKENS)

    @classmethod
    def kind_options(cls, options: dict[str, Any], type_vocab: int, source: Path, max_input: int) -> dict[str, Any]:
        segments = int(options.get("segments") or (3 if type_vocab >= 3 else 2))
        if segments not in (2, 3):
            raise ModelError(f"segments must be 2 or 3, got {segments}")
        if segments == 3 and type_vocab < 3:
            raise ModelError(f"3-segment input needs type_vocab_size >= 3, {source} has {type_vocab}")
        return {"segments": segments, "segment_types": [0, 1, 2] if segments == 3 else None,
                **cls.truncation_options(options, max_input)}

    def max_sequence_tokens(self) -> int:
        if self.truncation == "reference":
            return self.max_input_tokens
        lay = self.encoder.pair
        special = len(lay.prefix) + 2 * len(lay.middle) + len(lay.suffix)
        return special + self.spec.max_query_tokens + 2 * self.spec.max_passage_tokens

    def passage_budget(self, query_tokens: int) -> int:
        """Word pieces each passage keeps next to a query of ``query_tokens`` kept pieces."""
        if self.truncation != "reference":
            return self.spec.max_passage_tokens
        lay = self.encoder.pair
        query_ids = len(lay.prefix) + query_tokens + len(lay.middle)  # duoBERT's query_ids: [CLS] q [SEP]
        return (self.max_input_tokens - query_ids) // 2 - 2

    def prepare(self, items: Sequence[Item]) -> Prepared:
        lay = self.encoder.pair
        tq, ta, tb = self.types
        queries = list(dict.fromkeys(q for q, _, _ in items))
        passages = list(dict.fromkeys(x for _, a, b in items for x in (a, b)))
        qf = dict(zip(queries, self.encoder.fields(queries, self.spec.max_query_tokens), strict=True))
        reference = self.truncation == "reference"
        whole = 10**9 if reference else self.spec.max_passage_tokens  # reference: cut per query below
        pf = dict(zip(passages, self.encoder.fields(passages, whole), strict=True))
        ids: list[list[int]] = []
        types: list[list[int]] = []
        truncated = np.zeros(len(items), dtype=bool)
        for i, (q, a, b) in enumerate(items):
            fq, fa, fb = qf[q], pf[a], pf[b]
            if reference:
                n = self.passage_budget(len(fq.ids))
                fa, fb = fa.cut(n), fb.cut(n)
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
        return Prepared(len(items), ids, types, None, n, n, item_truncated=truncated)


class MonoCrossEncoder(MonoScoring, CrossEncoder):
    name = "mono-cross-encoder"
    default_max_query_tokens = 64
    default_max_passage_tokens = 445  # ``fields``: 64 + 445 + 3 special tokens = 512
    revision = 2  # 2: sentence-transformers' longest-first cut at the model's max length is the default
    export_options = frozenset({"temperature", "truncation", "max_input_tokens"})

    def __init__(self, spec: ModelSpec, encoder: Any) -> None:
        self.truncation = check_truncation(str(spec.options.get("truncation", "fields")))
        self.max_input_tokens = int(spec.options.get("max_input_tokens") or DEFAULT_MAX_INPUT_TOKENS)
        super().__init__(spec, encoder)
        self.temperature = check_temperature(spec.options.get("temperature", DEFAULT_MONO_TEMPERATURE))
        if self.max_input_tokens < self.special_tokens() + 2:
            raise ModelError(
                f"max_input_tokens must be >= {self.special_tokens() + 2} (the pair's special tokens and one "
                f"token of each text), got {self.max_input_tokens}"
            )

    @classmethod
    def kind_options(cls, options: dict[str, Any], type_vocab: int, source: Path, max_input: int) -> dict[str, Any]:
        return {
            "temperature": check_temperature(options.get("temperature") or DEFAULT_MONO_TEMPERATURE),
            **cls.truncation_options(options, max_input),
        }

    @classmethod
    def reference_length(cls, hf_tokenizer: Any) -> int:
        """CrossEncoder's ``max_length=None``: the tokenizer's ``model_max_length`` (transformers' stand-in
        for "none", 1e30, means the model's own limit; then 512)."""
        length = int(getattr(hf_tokenizer, "model_max_length", 0) or 0)
        return length if 0 < length < 10**6 else DEFAULT_MAX_INPUT_TOKENS

    def special_tokens(self) -> int:
        lay = self.encoder.pair
        return len(lay.prefix) + len(lay.middle) + len(lay.suffix)

    def max_sequence_tokens(self) -> int:
        if self.truncation == "reference":
            return self.max_input_tokens
        return self.special_tokens() + self.spec.max_query_tokens + self.spec.max_passage_tokens

    def encode_candidates(
        self, keys: Sequence[tuple[str, str]]
    ) -> tuple[list[list[int]], list[list[int]], np.ndarray]:
        lay = self.encoder.pair
        reference = self.truncation == "reference"
        big = 10**9
        queries = list(dict.fromkeys(q for q, _ in keys))
        passages = list(dict.fromkeys(d for _, d in keys))
        strip = str.strip if reference else str  # CrossEncoder strips both texts before tokenizing
        qf = dict(zip(queries, self.encoder.fields([strip(q) for q in queries],
                                                   big if reference else self.spec.max_query_tokens), strict=True))
        pf = dict(zip(passages, self.encoder.fields([strip(d) for d in passages],
                                                    big if reference else self.spec.max_passage_tokens),
                      strict=True))
        room = self.max_input_tokens - self.special_tokens()
        ids, types = [], []
        truncated = np.zeros(len(keys), dtype=bool)
        for i, (q, d) in enumerate(keys):
            fq, fd = qf[q], pf[d]
            nq, nd = longest_first(len(fq.ids), len(fd.ids), room) if reference else (len(fq.ids), len(fd.ids))
            truncated[i] = fq.truncated or fd.truncated or nq < len(fq.ids) or nd < len(fd.ids)
            ids.append([*lay.prefix, *fq.ids[:nq], *lay.middle, *fd.ids[:nd], *lay.suffix])
            types.append(
                [*lay.prefix_types, *([lay.type_x] * nq), *lay.middle_types, *([lay.type_y] * nd),
                 *lay.suffix_types]
            )
        return ids, types, truncated
