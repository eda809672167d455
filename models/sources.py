"""Checkpoint and tokenizer sources of an export: an embedded name or a checkpoint folder, its fast tokenizer
(from the folder or another one), the architecture check and the kind's ``ModelSpec``."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

from .embedded import EMBEDDED, embedded_source
from .errors import CorruptModelError, MissingTokenizerError, ModelError, UnknownModelError
from .registry import kind_class
from .textenc import TOKENIZER_FILE, TextEncoder
from .types import ModelSpec


def resolve_source(source: str | Path) -> Path:
    """An embedded model name (``minilm``) or a checkpoint folder with ``config.json``."""
    if isinstance(source, str) and source in EMBEDDED:
        return embedded_source(source)
    path = Path(source).expanduser()
    if not path.is_dir():
        known = ", ".join(sorted(EMBEDDED))
        raise UnknownModelError(
            f"model source {str(source)!r} is neither a folder nor an embedded model ({known})"
        )
    if not (path / "config.json").is_file():
        raise CorruptModelError(f"{path} has no config.json (not a transformers checkpoint)")
    return path.resolve()


TOKENIZER_SOURCE_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
)


SENTENCEPIECE_FILES = ("spiece.model", "tokenizer.model", "sentencepiece.bpe.model")


def load_hf_tokenizer(source: Path, config: Any = None):
    """The fast tokenizer of a folder; ``config`` (the checkpoint's) picks its class when the folder has no
    config.json of its own (a bare ``t5-base`` tokenizer folder)."""
    from transformers import AutoTokenizer

    if not any((source / name).is_file() for name in TOKENIZER_SOURCE_FILES):
        raise MissingTokenizerError(
            f"no tokenizer files in {source} (looked for {', '.join(TOKENIZER_SOURCE_FILES)})"
        )
    has_json = (source / TOKENIZER_FILE).is_file()
    sp_file = next((n for n in SENTENCEPIECE_FILES if (source / n).is_file()), None)
    if not has_json and sp_file and importlib.util.find_spec("sentencepiece") is None:
        raise MissingTokenizerError(
            f"{source}: reading {sp_file} needs the sentencepiece package (pip install 'rerank[export]')"
        )
    kwargs = {"config": config} if config is not None and not (source / "config.json").is_file() else {}
    try:
        tok = AutoTokenizer.from_pretrained(str(source), **kwargs)
    except Exception as exc:  # transformers raises OSError, ValueError, TypeError... for missing files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MissingTokenizerError(f"no usable tokenizer in {source}: {first}") from exc
    if getattr(tok, "backend_tokenizer", None) is None:
        raise MissingTokenizerError(f"{source}: only a slow tokenizer is available (no tokenizer.json)")
    if len(tok) <= len(set(tok.all_special_ids)):
        raise MissingTokenizerError(f"{source}: the tokenizer has no vocabulary beyond its special tokens")
    return tok


def text_encoder_from_hf(hf_tokenizer: Any) -> TextEncoder:
    """A private ``TextEncoder`` over a copy of the HF tokenizer's fast backend (not shared with it)."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, TOKENIZER_FILE).write_text(hf_tokenizer.backend_tokenizer.to_str())
        return TextEncoder(tmp)


ARCHITECTURE_NAMES = {
    "AutoModel": "encoders (BERT, RoBERTa, XLM-R, MiniLM, ...)",
    "AutoModelForSequenceClassification": "sequence classifiers (BERT, RoBERTa, XLM-R, ELECTRA, ...)",
    "AutoModelForSeq2SeqLM": "encoder-decoder LMs (T5, mT5, Flan-T5, UL2)",
    "AutoModelForCausalLM": "decoder-only LMs (Llama, Mistral, Qwen2, SmolLM2, GPT-2, ...)",
}


def architecture_of(config: Any) -> str:
    """The model class transformers builds for ``config`` (for a config.json without ``architectures``)."""
    import transformers

    for auto in ("AutoModelForSeq2SeqLM", "AutoModelForCausalLM", "AutoModelForSequenceClassification",
                 "AutoModel"):
        model_cls = getattr(transformers, auto)._model_mapping.get(type(config), None)
        if model_cls is not None:
            return f"no architectures in config.json; {auto} builds {model_cls.__name__}"
    return f"no architectures in config.json; config class {type(config).__name__}"


def check_architecture(kind: str, config: Any) -> None:
    """One line naming what the kind supports when ``config``'s architecture is not among them."""
    import transformers

    cls = kind_class(kind)
    seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    for auto in cls.architectures:
        if seq2seq and auto != "AutoModelForSeq2SeqLM":
            continue  # T5 has classification heads too, but no kind here reads them
        if auto == "AutoModelForCausalLM" and type(config) in transformers.AutoModelForMaskedLM._model_mapping:
            continue  # an encoder with a causal head (BertLMHeadModel) is no chat LLM
        if type(config) in getattr(transformers, auto)._model_mapping:
            return
    arch = ", ".join(getattr(config, "architectures", None) or []) or architecture_of(config)
    supported = "; ".join(ARCHITECTURE_NAMES[a] for a in cls.architectures)
    raise ModelError(
        f"kind {kind!r} does not support model type {getattr(config, 'model_type', '?')!r} ({arch}); "
        f"it supports: {supported}"
    )


def describe_source(
    source: Path, kind: str, *, tokenizer: str | Path | None = None, **options: Any
) -> tuple[ModelSpec, Any]:
    """The kind's spec for a source folder, and its HF tokenizer (read from ``tokenizer`` when given:
    pygaggle's duoT5 reads the ``t5-base`` tokenizer, not the checkpoint's)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(source))
    except (ValueError, KeyError, OSError) as exc:
        raise ModelError(f"{source}: unreadable config.json: {str(exc).splitlines()[0]}") from exc
    check_architecture(kind, config)
    tok_dir = source if tokenizer is None else Path(tokenizer).expanduser()
    if not tok_dir.is_dir():
        raise MissingTokenizerError(f"tokenizer folder {str(tokenizer)!r} does not exist")
    hf_tok = load_hf_tokenizer(tok_dir, config)
    spec = kind_class(kind).describe(source, hf_tok, config, **options)
    return spec, hf_tok
