"""Tiny randomly initialised checkpoints for tests and benchmarks (no downloads).

Each builder writes a transformers checkpoint folder (config, safetensors weights, fast tokenizer) that
``export_model`` and ``load_model(..., backend="torch", kind=...)`` accept. Needs torch, transformers and
tokenizers (the ``export`` extra).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

#: Queries and passages in the replicas' vocabulary, for tests that score real-looking pairs.
SAMPLE_QUERIES = ["what do plants need for photosynthesis", "why did the stock market fall"]
SAMPLE_PASSAGES = [
    "plants use sunlight water and carbon dioxide to make sugar in the green leaf",
    "the stock market fell as investors sold shares and the bank price was cold",
    "a hot cup of coffee in the morning",
    "the football team scored a goal in the match",
]

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
    from .embedded import embedded_source

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


# --- real-format tokenizers trained here (sentencepiece, WordPiece, byte-level BPE) ---------------------
PROMPT_WORDS = [
    "Query", "Document", "Document0", "Document1", "Relevant", "true", "false", "Passage", "Given", "query",
    "which", "of", "the", "following", "two", "passages", "is", "more", "relevant", "to", "Output", "A", "B",
    "or",
]


def _corpus(
    n_lines: int = 2000, seed: int = 0, extra_lines: Sequence[str] = (), extra: Sequence[str] = ()
) -> list[str]:
    """Random lines over the replicas' words, the reference prompts, ``extra`` (real text, so that a replica
    tokenizes it as a real model would: few unknown pieces) and ``extra_lines`` (200 times each, e.g. prompts
    whose words must be pieces)."""
    import random

    rnd = random.Random(seed)
    vocab = WORDS + PROMPT_WORDS
    lines = [" ".join(rnd.choice(vocab) for _ in range(12)) for _ in range(n_lines)] + list(extra)
    return lines + ["Query: what Document0: plants Document1: water Relevant: true false"] * 200 + [
        'Given a query "what", which of the following two passages is more relevant to the query? '
        'Passage A: "x" Passage B: "y" Output Passage A or Passage B:'
    ] * 200 + list(extra_lines) * 200


def train_sentencepiece(
    path: str | Path, *, vocab_size: int = 400, seed: int = 0, corpus: Sequence[str] = (),
    extra_lines: Sequence[str] = (),
) -> Path:
    """A unigram sentencepiece model laid out as T5's ``spiece.model`` (pad 0, </s> 1, <unk> 2, no BOS),
    trained on the test corpus and ``corpus`` (every character of which gets a piece); ``extra_lines`` join
    the training corpus (200 times each), e.g. prompts whose words must be pieces."""
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus(seed=seed, extra_lines=extra_lines, extra=corpus)), model_writer=buf,
        vocab_size=vocab_size,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False,
        num_threads=1, minloglevel=2, character_coverage=1.0 if corpus else 0.9995,
    )
    path = Path(path)
    path.write_bytes(buf.getvalue())
    return path


def build_castorini_t5(
    folder: str | Path, *, seed: int = 0, extra_ids: int = 100, corpus: Sequence[str] = (), vocab_size: int = 400,
    extra_lines: Sequence[str] = (),
) -> Path:
    """A T5ForConditionalGeneration folder laid out exactly as ``castorini/duot5-base-msmarco``:
    config.json, pytorch_model.bin, spiece.model, tokenizer_config.json, special_tokens_map.json (no
    tokenizer.json). The sentencepiece model is trained here; the vocabulary has T5's 100 extra ids."""
    import json

    import sentencepiece as spm
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sp_path = train_sentencepiece(folder / "spiece.model", seed=seed, corpus=corpus, vocab_size=vocab_size,
                                  extra_lines=extra_lines)
    n_pieces = spm.SentencePieceProcessor(model_file=str(sp_path)).get_piece_size()
    _seed(seed)
    config = T5Config(
        vocab_size=n_pieces + extra_ids, d_model=32, d_ff=64, d_kv=16, num_layers=2, num_decoder_layers=2,
        num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    model = T5ForConditionalGeneration(config).eval()
    config.architectures = ["T5ForConditionalGeneration"]
    (folder / "config.json").write_text(config.to_json_string())
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    extra = [f"<extra_id_{i}>" for i in range(extra_ids)]
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "additional_special_tokens": extra}
    ))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512, "extra_ids": extra_ids}))
    return folder


def train_wordpiece_vocab(path: str | Path, *, corpus: Sequence[str] = (), vocab_size: int = 300) -> Path:
    """A BERT ``vocab.txt`` (WordPiece, uncased) trained here on the test corpus and ``corpus``."""
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(_corpus(extra=corpus), vocab_size=vocab_size, min_frequency=1, show_progress=False,
                            limit_alphabet=10**4)
    path = Path(path)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    path.write_text("".join(f"{piece}\n" for piece, _ in vocab))
    return path


def build_wordpiece_bert(
    folder: str | Path, *, num_labels: int = 2, type_vocab_size: int = 3, seed: int = 0,
    corpus: Sequence[str] = (), vocab_size: int = 300,
) -> Path:
    """BertForSequenceClassification with a WordPiece ``vocab.txt`` trained here, laid out as castorini's
    duoBERT / monoBERT folders (config.json, pytorch_model.bin, vocab.txt, tokenizer_config.json)."""
    import json

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = train_wordpiece_vocab(folder / "vocab.txt", corpus=corpus, vocab_size=vocab_size)
    _seed(seed)
    config = BertConfig(
        vocab_size=len(vocab.read_text().splitlines()), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
        type_vocab_size=type_vocab_size, num_labels=num_labels, initializer_range=0.2,
        architectures=["BertForSequenceClassification"],
    )
    model = BertForSequenceClassification(config).eval()
    (folder / "config.json").write_text(config.to_json_string())
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"})
    )
    return folder


BPE_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_bpe_llama(
    folder: str | Path, *, seed: int = 0, chat_template: bool = True, corpus: Sequence[str] = (),
    vocab_size: int = 500, extra_lines: Sequence[str] = (),
) -> Path:
    """LlamaForCausalLM with a byte-level BPE tokenizer trained here and a ChatML chat template (the
    SmolLM2 / Qwen layout: tokenizer.json, tokenizer_config.json with ``chat_template``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed=seed, extra_lines=extra_lines, extra=corpus), trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    if chat_template:
        hf.chat_template = BPE_CHAT_TEMPLATE
    _seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tok.token_to_id("<|im_start|>"), eos_token_id=tok.token_to_id("<|im_end|>"),
        initializer_range=0.2, tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).eval().save_pretrained(str(folder))
    hf.save_pretrained(str(folder))
    return folder
