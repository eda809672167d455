"""Torch wrapper modules: each one's ``forward`` *is* the graph contract (see ``model.py``).

The same module is exported to ONNX (``torch.onnx.export(..., dynamo=False)`` after ``.eval()``) and run
eagerly by the torch backend, so the two backends compute the same function. Imported lazily: the ONNX
runtime path never needs torch or transformers.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ModelError


def _check_loaded(auto_cls: Any, source: Path, info: dict[str, Any]) -> None:
    """An error naming the weights the loader had to initialise (missing from the checkpoint or of another
    shape): a model with a random head would score noise, and its parity check would compare that noise
    with itself."""
    invented = sorted({*map(str, info.get("missing_keys") or ()),
                       *(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys") or ())})
    if invented:
        shown = ", ".join(invented[:6]) + (f" and {len(invented) - 6} more" if len(invented) > 6 else "")
        raise ModelError(
            f"{source}: the checkpoint has no trained weights for {shown} ({auto_cls.__name__} would "
            "initialise them at random); is it the right kind for this model?"
        )


def _load(auto_cls: Any, source: Path, dtype: Any, attn_implementation: str | None):
    kwargs: dict[str, Any] = {"output_loading_info": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model, info = auto_cls.from_pretrained(str(source), **kwargs)
    except (ValueError, ImportError) as exc:
        if attn_implementation in (None, "eager") or "attn" not in str(exc).lower():
            raise
        kwargs["attn_implementation"] = "eager"  # the architecture has no such attention implementation
        model, info = auto_cls.from_pretrained(str(source), **kwargs)
    _check_loaded(auto_cls, source, info)
    return model.eval()


def accepts_token_types(auto_cls: Any, config: Any) -> bool:
    """True when the architecture's forward takes ``token_type_ids`` and the model has several types."""
    if int(getattr(config, "type_vocab_size", 0) or 0) < 2:
        return False
    try:
        model_cls = auto_cls._model_mapping[type(config)]
    except KeyError:
        return False
    return "token_type_ids" in inspect.signature(model_cls.forward).parameters


class EmbeddingModule(nn.Module):
    """Encoder -> mean (or CLS) pooling over real tokens -> L2 normalisation. Output ``embedding``."""

    def __init__(self, model: nn.Module, pooling: str, use_token_types: bool) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self.use_token_types = use_token_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"token_type_ids": token_type_ids} if self.use_token_types else {}
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        hidden = hidden.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2.0, dim=-1)


class ClassifierModule(nn.Module):
    """Sequence classifier -> preference logit: the logit (one label) or logit[1] - logit[0] (two)."""

    def __init__(self, model: nn.Module, use_token_types: bool) -> None:
        super().__init__()
        self.model = model
        self.use_token_types = use_token_types
        self.num_labels = int(model.config.num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"token_type_ids": token_type_ids} if self.use_token_types else {}
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits.float()
        if self.num_labels == 1:
            return logits[:, 0]
        return logits[:, 1] - logits[:, 0]


class Seq2SeqLabelModule(nn.Module):
    """Encoder + one decoder pass over a fixed decoder prefix -> logit(pos) - logit(neg) at its last step.

    duoT5 / monoT5: prefix = the decoder start token, labels true/false (pygaggle's first greedy step).
    PRP on T5: prefix = ``"<pad> Passage"``'s ids, labels A/B (llm-rankers). No generation loop."""

    def __init__(self, model: nn.Module, prefix: list[int], pos_id: int, neg_id: int) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("prefix", torch.tensor([int(i) for i in prefix], dtype=torch.long))
        self.pos_id = int(pos_id)
        self.neg_id = int(neg_id)

    def forward(self, input_ids, attention_mask):
        decoder = self.prefix.unsqueeze(0).expand(input_ids.shape[0], -1)
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder, use_cache=False
        )
        last = out.logits[:, -1, :].float()
        return last[:, self.pos_id] - last[:, self.neg_id]


class CausalLastTokenModule(nn.Module):
    """Causal LM over right-padded prompts -> hidden state at the last real token -> logit(A) - logit(B).

    Only the two label rows of the output embedding are applied (no full-vocabulary projection). Models
    that rescale or soft-cap their logits (Gemma 2, Cohere) are not covered by this shortcut.

    ``prefix_cache`` + ``forward_suffixes`` run prompts that share a prefix (models/prefix.py): the prefix
    once, its keys and values then serve a batch of suffixes; the same function of the whole token ids.
    """

    def __init__(self, model: nn.Module, a_id: int, b_id: int) -> None:
        super().__init__()
        self.base = model.base_model
        head = model.get_output_embeddings()
        rows = head.weight.detach()[[int(a_id), int(b_id)]].clone()
        self.register_buffer("label_weight", rows)
        bias = getattr(head, "bias", None)
        self.register_buffer(
            "label_bias", None if bias is None else bias.detach()[[int(a_id), int(b_id)]].clone()
        )
        params = inspect.signature(self.base.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self.shares_prefixes = _full_attention_only(model.config)

    def _readout(self, hidden, lengths):
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        h = hidden[rows, lengths - 1]
        logits = (h @ self.label_weight.t()).float()
        if self.label_bias is not None:
            logits = logits + self.label_bias.float()
        return logits[:, 0] - logits[:, 1]

    def forward(self, input_ids, attention_mask):
        hidden = self.base(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        return self._readout(hidden, attention_mask.sum(dim=1))

    def prefix_cache(self, prefix_ids) -> list[tuple[Any, Any]]:
        """Keys and values of every layer for ``prefix_ids`` ``[1, P]``."""
        out = self.base(input_ids=prefix_ids, use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        if hasattr(cache, "layers"):
            return [(layer.keys, layer.values) for layer in cache.layers]
        return list(zip(cache.key_cache, cache.value_cache, strict=True))  # transformers < 4.56

    def forward_suffixes(self, prefix: list[tuple[Any, Any]], input_ids, attention_mask):
        """The logit of each right-padded suffix ``[B, S]`` following the prefix (``prefix_cache``)."""
        from transformers import DynamicCache

        batch = input_ids.shape[0]
        cache = DynamicCache()
        for i, (keys, values) in enumerate(prefix):
            cache.update(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1), i)
        width = prefix[0][0].shape[-2]
        mask = torch.cat([attention_mask.new_ones((batch, width)), attention_mask], dim=1)
        hidden = self.base(
            input_ids=input_ids, attention_mask=mask, use_cache=True, **{self._cache_arg: cache}
        ).last_hidden_state
        return self._readout(hidden, attention_mask.sum(dim=1))


def _full_attention_only(config: Any) -> bool:
    """Whether every layer attends to the whole prefix (no sliding window), so a plain cache serves it."""
    types = getattr(config, "layer_types", None)
    if types:
        return all(t == "full_attention" for t in types)
    window = getattr(config, "sliding_window", None)
    return not window or getattr(config, "use_sliding_window", True) is False


def quantize_int8(module: nn.Module) -> nn.Module:
    """Dynamic int8 weights for every ``nn.Linear`` (activations quantized per call; fbgemm/x86 kernels);
    the label read-out rows stay fp32 (they are a buffer, not a Linear)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8).eval()


def embedding_module(source: Path, pooling: str, *, dtype=None, attn_implementation="eager") -> nn.Module:
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(source))
    model = _load(AutoModel, source, dtype, attn_implementation)
    return EmbeddingModule(model, pooling, accepts_token_types(AutoModel, config)).eval()


def classifier_module(source: Path, *, dtype=None, attn_implementation="eager") -> nn.Module:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(str(source))
    model = _load(AutoModelForSequenceClassification, source, dtype, attn_implementation)
    return ClassifierModule(model, accepts_token_types(AutoModelForSequenceClassification, config)).eval()


def decoder_start_id(config: Any) -> int:
    start = config.decoder_start_token_id
    return int(start if start is not None else (config.pad_token_id or 0))


def seq2seq_module(
    source: Path, pos_id: int, neg_id: int, *, prefix: list[int] | None = None, dtype=None,
    attn_implementation="eager",
):
    """Seq2seq LM read out at the end of ``prefix`` (default: the decoder start token alone)."""
    from transformers import AutoModelForSeq2SeqLM

    model = _load(AutoModelForSeq2SeqLM, source, dtype, attn_implementation)
    prefix = list(prefix) if prefix else [decoder_start_id(model.config)]
    return Seq2SeqLabelModule(model, prefix, pos_id, neg_id).eval()


def causal_module(
    source: Path, a_id: int, b_id: int, *, dtype=None, attn_implementation="eager"
) -> nn.Module:
    from transformers import AutoModelForCausalLM

    model = _load(AutoModelForCausalLM, source, dtype, attn_implementation)
    return CausalLastTokenModule(model, a_id, b_id).eval()
