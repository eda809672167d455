"""Tiny randomly initialised checkpoints for tests and benchmarks (no downloads).

Each builder writes a transformers checkpoint folder (config, safetensors weights, fast tokenizer) that
``export_model`` and ``load_model(..., backend="torch", kind=...)`` accept. Needs torch, transformers and
tokenizers (the ``export`` extra).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "with",
    "that",
    "by",
    "as",
    "are",
    "was",
    "from",
    "at",
    "be",
    "this",
    "which",
    "or",
    "can",
    "how",
    "what",
    "why",
    "when",
    "plants",
    "photosynthesis",
    "sunlight",
    "sugar",
    "water",
    "carbon",
    "dioxide",
    "leaf",
    "green",
    "energy",
    "light",
    "food",
    "cell",
    "chlorophyll",
    "stock",
    "market",
    "shares",
    "price",
    "fell",
    "trading",
    "investors",
    "bank",
    "money",
    "football",
    "team",
    "goal",
    "match",
    "player",
    "ball",
    "river",
    "mountain",
    "rain",
    "weather",
    "cloud",
    "snow",
    "storm",
    "coffee",
    "tea",
    "cup",
    "drink",
    "morning",
    "bean",
    "brew",
    "hot",
    "cold",
    "python",
    "code",
    "function",
    "program",
    "computer",
    "software",
    "bug",
    "test",
    "data",
    "model",
    "train",
    "learn",
    "network",
]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|user|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _word_level(specials: list[str], texts: Iterable[str]):
    """A WordLevel tokenizer (Whitespace pre-tokenizer) over the specials and the pieces of ``texts``."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    pre = pre_tokenizers.Whitespace()
    vocab: dict[str, int] = {}
    for s in specials:
        vocab.setdefault(s, len(vocab))
    for text in texts:
        for piece, _ in pre.pre_tokenize_str(text):
            vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    tok.add_special_tokens(specials)
    return tok, vocab


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def minilm_source() -> Path:
    """The embedded all-MiniLM-L6-v2 checkpoint folder."""
    from .store import embedded_source

    return embedded_source("minilm")


def build_tiny_bert_classifier(
    folder: str | Path, *, num_labels: int = 1, type_vocab_size: int = 2, hidden: int = 32, seed: int = 0
) -> Path:
    """BertForSequenceClassification (hidden 32, 2 layers) with the MiniLM (BERT uncased) tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = Path(folder)
    _seed(seed)
    tok = AutoTokenizer.from_pretrained(str(minilm_source()))
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=512,
        type_vocab_size=type_vocab_size,
        num_labels=num_labels,
        initializer_range=0.2,
    )
    BertForSequenceClassification(config).eval().save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def build_minilm_cross_encoder(folder: str | Path, *, seed: int = 0) -> Path:
    """The MiniLM encoder weights with a random single-logit classification head (benchmark stand-in)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(folder)
    _seed(seed)
    src = minilm_source()
    model = AutoModelForSequenceClassification.from_pretrained(str(src), num_labels=1)
    model.eval().save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(folder))
    return folder


def build_tiny_t5(folder: str | Path, *, seed: int = 0) -> Path:
    """T5ForConditionalGeneration (d_model 32, 2+2 layers) with a word-level tokenizer holding true/false."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    from .duo_t5 import DUO_T5_TEMPLATE

    folder = Path(folder)
    _seed(seed)
    specials = ["<pad>", "</s>", "<unk>"]
    tok, vocab = _word_level(specials, [DUO_T5_TEMPLATE, "true false", *WORDS])
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    config = T5Config(
        vocab_size=len(vocab),
        d_model=32,
        d_ff=64,
        d_kv=16,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        pad_token_id=vocab["<pad>"],
        eos_token_id=vocab["</s>"],
        decoder_start_token_id=vocab["<pad>"],
    )
    T5ForConditionalGeneration(config).eval().save_pretrained(str(folder))
    hf.save_pretrained(str(folder))
    return folder


def build_tiny_llama(folder: str | Path, *, chat_template: bool = True, seed: int = 0) -> Path:
    """LlamaForCausalLM (hidden 32, 2 layers) with a word-level tokenizer holding A and B (and a chat
    template with <|user|>/<|assistant|> turns when ``chat_template``)."""
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from .prp import PRP_TEMPLATE

    folder = Path(folder)
    _seed(seed)
    specials = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>"]
    sample = PRP_TEMPLATE.format(query="what", a="plants", b="water")
    tok, vocab = _word_level(specials, [sample, "A B", *WORDS])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if chat_template:
        hf.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        initializer_range=0.2,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).eval().save_pretrained(str(folder))
    hf.save_pretrained(str(folder))
    return folder
