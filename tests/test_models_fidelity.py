"""Reference fidelity of every pairwise kind: the published code's scoring, re-implemented here from the
papers' code (written for this test, not imported), against our torch path and our ONNX export.

Replicas are tiny randomly initialised checkpoints with real-format tokenizers trained in the test: a
sentencepiece model in castorini's duoT5 folder layout (no tokenizer.json), a WordPiece ``vocab.txt`` in
duoBERT's layout, a byte-level BPE tokenizer with a ChatML chat template. Each test asserts the same token
ids as the reference and max |dp| <= 1e-4 for torch and for ONNX fp32; the figures are printed
(``pytest -s``) for the docs.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

from rerank.models import export_model, load_model  # noqa: E402
from rerank.models.testing import (  # noqa: E402
    SAMPLE_PASSAGES,
    SAMPLE_QUERIES,
    WORDS,
    build_bpe_llama,
    build_castorini_t5,
    build_wordpiece_bert,
)

TOL = 1e-4
QUERIES, PASSAGES = SAMPLE_QUERIES, SAMPLE_PASSAGES
LONG = " ".join(WORDS * 2)  # longer than every budget used below


def items_of(queries, passages):
    return [(q, a, b) for q in queries for a in passages for b in passages if a != b]


def report(name: str, ours_torch, ours_onnx, ref) -> None:
    dt = float(np.max(np.abs(np.asarray(ours_torch) - ref)))
    do = float(np.max(np.abs(np.asarray(ours_onnx) - ref)))
    print(f"\nFIDELITY {name}: items {len(ref)} max|dp| torch {dt:.2e} onnx {do:.2e} p range "
          f"[{ref.min():.3f}, {ref.max():.3f}]")
    assert dt <= TOL and do <= TOL, (dt, do)
    assert ref.max() - ref.min() > 0.01, "the replica's p do not vary: the test would prove nothing"


def both(folder):
    torch_path = load_model(folder, backend="torch", attn_implementation="eager")
    return torch_path, load_model(folder, backend="onnx", variant="fp32")  # fp32 ONNX, whatever the CPU default


def prepared_ids(model, items):
    return [list(map(int, s)) for s in model.prepare(items).input_ids]


# --- duoT5 / monoT5 (pygaggle: T5DuoBatchTokenizer / T5BatchTokenizer + greedy_decode first step) --------
class PygaggleT5:
    """pygaggle's slow-tokenizer path: sentencepiece pieces of ``f"{prompt} </s>"`` (one </s>),
    ``truncation=True, max_length=512`` (the first 511 pieces, then </s>), right padding; the first decoder
    step from the start token; softmax over the logits of "▁false" and "▁true", P(true)."""

    def __init__(self, folder, max_length=512):
        from transformers import T5ForConditionalGeneration

        self.sp = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
        self.model = T5ForConditionalGeneration.from_pretrained(str(folder)).eval()
        self.max_length = max_length
        self.false_id, self.true_id = self.sp.piece_to_id("▁false"), self.sp.piece_to_id("▁true")
        assert self.sp.id_to_piece(self.false_id) == "▁false" and self.sp.id_to_piece(self.true_id) == "▁true"

    def ids(self, prompt):
        pieces = self.sp.encode(prompt)
        if len(pieces) + 1 > self.max_length:
            pieces = pieces[: self.max_length - 1]
        return [*pieces, self.sp.eos_id()]

    def logits_at(self, batch_ids, decoder):
        width = max(len(x) for x in batch_ids)
        ids = torch.tensor([x + [self.sp.pad_id()] * (width - len(x)) for x in batch_ids])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in batch_ids])
        dec = torch.tensor([decoder] * len(batch_ids))
        with torch.no_grad():
            return self.model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits[:, -1, :]

    def p_true(self, prompts):
        logits = self.logits_at([self.ids(p) for p in prompts], [self.model.config.decoder_start_token_id])
        return torch.softmax(logits[:, [self.false_id, self.true_id]], dim=1)[:, 1].numpy().astype(np.float64)


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    return build_castorini_t5(tmp_path_factory.mktemp("castorini") / "duot5-base-msmarco")


@pytest.fixture(scope="module")
def duo_t5(t5_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "duot5"
    export_model(t5_folder, "duo-t5", out, parity_queries=2, parity_passages=3, fp16=True)
    return out


def test_castorini_layout_exports(t5_folder, duo_t5):
    import json

    assert sorted(p.name for p in t5_folder.iterdir()) == [
        "config.json", "pytorch_model.bin", "special_tokens_map.json", "spiece.model", "tokenizer_config.json"
    ]
    manifest = json.loads((duo_t5 / "manifest.json").read_text())
    assert manifest["variants"]["fp32"]["parity"]["passed"] and manifest["variants"]["fp16"]["parity"]["passed"]
    # CUDA loads fp16; the CPU default is the measured fastest variant that holds the fp32 decisions
    assert manifest["default_variants"]["cuda"] == "fp16"
    assert manifest["default_variants"]["cpu"] == manifest.get("cpu_default", {}).get("variant", "fp32")
    # fp16 is never a CPU default (no faster than fp32 on the CPU provider): not even a candidate
    assert manifest["default_variants"]["cpu"] != "fp16"
    assert not any(c.get("variant") == "fp16" for c in manifest["cpu_default"]["candidates"].values())
    assert (duo_t5 / "tokenizer.json").is_file() and (duo_t5 / "model.onnx").is_file()


def test_duo_t5_matches_pygaggle(t5_folder, duo_t5):
    ref_model = PygaggleT5(t5_folder)
    items = items_of(QUERIES, PASSAGES)
    prompts = [f"Query: {q} Document0: {a} Document1: {b} Relevant:" for q, a, b in items]
    ours_t, ours_o = both(duo_t5)
    assert prepared_ids(ours_o, items) == [ref_model.ids(p) for p in prompts]
    assert ours_o.spec.options["label_token_ids"] == [ref_model.true_id, ref_model.false_id]
    ref = ref_model.p_true(prompts)
    report("duo-t5", ours_t.compare_batch(items).p, ours_o.compare_batch(items).p, ref)
    fp16 = load_model(duo_t5, variant="fp16")
    assert fp16.variant == "fp16" and prepared_ids(fp16, items) == prepared_ids(ours_o, items)
    d16 = float(np.max(np.abs(fp16.compare_batch(items).p - ref)))
    print(f"FIDELITY duo-t5 fp16 (CPU provider): max|dp| {d16:.2e}")
    assert d16 <= 0.02


def test_duo_t5_reference_truncation(t5_folder, tmp_path):
    """``truncation="reference"``: the whole prompt cut as pygaggle's max_length cuts it (here 40 tokens)."""
    out = tmp_path / "duot5-ref"
    export_model(t5_folder, "duo-t5", out, truncation="reference", max_input_tokens=40, parity_queries=1,
                 parity_passages=3)
    ref_model = PygaggleT5(t5_folder, max_length=40)
    items = items_of(QUERIES[:1], [PASSAGES[2], "a cup of tea", LONG])
    prompts = [f"Query: {q} Document0: {a} Document1: {b} Relevant:" for q, a, b in items]
    ours_t, ours_o = both(out)
    ref_ids = [ref_model.ids(p) for p in prompts]
    assert max(len(x) for x in ref_ids) == 40 and prepared_ids(ours_o, items) == ref_ids
    cut = sum(len(ref_model.sp.encode(p)) + 1 > 40 for p in prompts)
    assert cut > 0 and ours_o.compare_batch(items).stats.truncated_items == cut
    report("duo-t5 reference truncation", ours_t.compare_batch(items).p, ours_o.compare_batch(items).p,
           ref_model.p_true(prompts))


def mono_t5_reference(ref_model, items):
    """monoT5 (pygaggle): P(true) of each (query, candidate) prompt; p(a, b) = sigmoid of the log-odds
    difference. Returns the candidates, their prompts and p per item."""
    keys = list(dict.fromkeys((q, d) for q, a, b in items for d in (a, b)))
    prompts = [f"Query: {q} Document: {d} Relevant:" for q, d in keys]
    p_true = dict(zip(keys, ref_model.p_true(prompts), strict=True))
    logodds = {k: np.log(v) - np.log1p(-v) for k, v in p_true.items()}
    return keys, prompts, np.array([1 / (1 + np.exp(-(logodds[(q, a)] - logodds[(q, b)]))) for q, a, b in items])


def test_mono_t5_matches_pygaggle(t5_folder, tmp_path):
    out = tmp_path / "monot5"
    export_model(t5_folder, "mono-t5", out, parity_queries=2, parity_passages=3)
    ref_model = PygaggleT5(t5_folder)
    items = items_of(QUERIES, PASSAGES)
    keys, prompts, ref = mono_t5_reference(ref_model, items)
    ours_t, ours_o = both(out)
    prepared = ours_o.prepare(items)
    assert len(prepared.input_ids) == len(keys)  # each candidate once per call
    assert [list(map(int, s)) for s in prepared.input_ids] == [ref_model.ids(p) for p in prompts]
    report("mono-t5", ours_t.compare_batch(items).p, ours_o.compare_batch(items).p, ref)


# --- PRP (ielab/llm-rankers pairwise.py) ----------------------------------------------------------------
LLM_RANKERS_PROMPT = (
    'Given a query "{query}", which of the following two passages is more relevant to the query?\n\n'
    'Passage A: "{doc1}"\n\nPassage B: "{doc2}"\n\nOutput Passage A or Passage B:'
)


def test_prp_t5_matches_llm_rankers(t5_folder, tmp_path):
    """T5 path: encoder input ``tokenizer(prompt)`` (prompt + </s>), decoder primed with the ids of
    ``"<pad> Passage"``; the generated label token is "▁A" or "▁B": p = softmax over those two logits."""
    out = tmp_path / "prp-t5"
    export_model(t5_folder, "prp", out, parity_queries=1, parity_passages=3)
    ref_model = PygaggleT5(t5_folder)
    sp = ref_model.sp
    decoder = [sp.pad_id(), sp.piece_to_id("▁Passage")]  # the slow tokenizer: "<pad>" special, then pieces
    assert sp.encode(" Passage", out_type=str) == ["▁Passage"]
    a_id, b_id = sp.piece_to_id("▁A"), sp.piece_to_id("▁B")
    items = items_of(QUERIES[:1], PASSAGES)
    prompts = [LLM_RANKERS_PROMPT.format(query=q, doc1=a, doc2=b) for q, a, b in items]
    logits = ref_model.logits_at([ref_model.ids(p) for p in prompts], decoder)
    ref = torch.softmax(logits[:, [a_id, b_id]], dim=1)[:, 0].numpy().astype(np.float64)
    ours_t, ours_o = both(out)
    assert ours_o.spec.options["decoder_ids"] == decoder
    assert ours_o.spec.options["label_token_ids"] == [a_id, b_id]
    assert prepared_ids(ours_o, items) == [ref_model.ids(p) for p in prompts]
    report("prp encoder-decoder", ours_t.compare_batch(items).p, ours_o.compare_batch(items).p, ref)


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    return build_bpe_llama(tmp_path_factory.mktemp("bpe") / "chat-llm")


def llm_rankers_decoder_only(tok, llm, items, chat, truncate=lambda text: text):
    """llm-rankers ``PairwiseLlmRanker.compare`` on a decoder-only model: the prompt of the (truncated)
    texts, the chat template's user turn + generation prompt, ``+ " Passage:"``, ``tokenizer(prompt)``; p =
    softmax of the next token's logits of " A" and " B". Returns the ids and p per item."""
    a_id, b_id = tok.encode(" A", add_special_tokens=False)[0], tok.encode(" B", add_special_tokens=False)[0]
    ref_ids, ref = [], []
    for q, a, b in items:
        text = LLM_RANKERS_PROMPT.format(query=truncate(q), doc1=truncate(a), doc2=truncate(b))
        if chat:
            text = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                           add_generation_prompt=True)
        ids = tok(text + " Passage:").input_ids
        with torch.no_grad():
            last = llm(input_ids=torch.tensor([ids])).logits[0, -1]
        ref_ids.append(ids)
        ref.append(float(torch.softmax(last[[a_id, b_id]], dim=0)[0]))
    return ref_ids, np.array(ref)


@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "no-chat-template"])
def test_prp_decoder_only_matches_llm_rankers(llama_folder, tmp_path, chat):
    """Decoder-only path: ``apply_chat_template(user turn, add_generation_prompt=True) + " Passage:"``,
    tokenized with the tokenizer's defaults; the next token's logits of " A" and " B", softmax."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "prp-llm"
    export_model(llama_folder, "prp", out, chat_template=chat, parity_queries=1, parity_passages=3)
    tok = AutoTokenizer.from_pretrained(str(llama_folder))
    llm = AutoModelForCausalLM.from_pretrained(str(llama_folder)).eval()
    a_ids, b_ids = tok.encode(" A", add_special_tokens=False), tok.encode(" B", add_special_tokens=False)
    assert len(a_ids) == 1 and len(b_ids) == 1, "the reference's answer tokens are single tokens here"
    items = items_of(QUERIES[:1], PASSAGES)
    ref_ids, ref = llm_rankers_decoder_only(tok, llm, items, chat)
    ours_t, ours_o = both(out)
    assert ours_o.spec.options["label_token_ids"] == [a_ids[0], b_ids[0]]
    assert prepared_ids(ours_o, items) == ref_ids
    report(f"prp decoder-only chat={chat}", ours_t.compare_batch(items).p, ours_o.compare_batch(items).p, ref)


# --- duoBERT / monoBERT (castorini duobert; sentence-transformers CrossEncoder) -----------------------
class WordPiece:
    """BERT's uncased tokenization (basic: lower-case, strip accents, split on whitespace and punctuation;
    then greedy longest-match-first word pieces with ``##``), as in BERT's ``tokenization.py``."""

    def __init__(self, vocab_file):
        self.vocab = {w: i for i, w in enumerate(vocab_file.read_text().splitlines())}

    def basic(self, text):
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        return re.findall(r"\w+|[^\w\s]", text)

    def __call__(self, text):
        out = []
        for word in self.basic(text):
            start, pieces = 0, []
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = ("##" if start else "") + word[start:end]
                    if piece in self.vocab:
                        break
                    end -= 1
                if end == start:
                    pieces = [self.vocab["[UNK]"]]
                    break
                pieces.append(self.vocab[piece])
                start = end
            out.extend(pieces)
        return out


def test_duo_cross_encoder_matches_duobert(tmp_path):
    """``truncation="fields"`` (the explicit per-field budgets, 8/20 here): ``[CLS] q[:8] [SEP] a[:20] [SEP]
    b[:20] [SEP]``, segments 0/1/2, P(class 1) of a two-logit head. duoBERT's own query-dependent cut (the
    default) is checked on long inputs below."""
    from transformers import BertForSequenceClassification

    folder = build_wordpiece_bert(tmp_path / "duobert", num_labels=2, type_vocab_size=3)
    out = tmp_path / "duobert-onnx"
    export_model(folder, "duo-cross-encoder", out, max_query_tokens=8, max_passage_tokens=20, truncation="fields",
                 parity_queries=1, parity_passages=3)
    wp = WordPiece(folder / "vocab.txt")
    cls_id, sep_id = wp.vocab["[CLS]"], wp.vocab["[SEP]"]
    model = BertForSequenceClassification.from_pretrained(str(folder)).eval()
    items = items_of(QUERIES, [*PASSAGES[:3], LONG])
    ref_ids, ref_types, ref = [], [], []
    for q, a, b in items:
        tq, ta, tb = wp(q)[:8], wp(a)[:20], wp(b)[:20]
        ids = [cls_id, *tq, sep_id, *ta, sep_id, *tb, sep_id]
        types = [0] * (len(tq) + 2) + [1] * (len(ta) + 1) + [2] * (len(tb) + 1)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits[0]
        ref_ids.append(ids)
        ref_types.append(types)
        ref.append(float(torch.softmax(logits, dim=0)[1]))
    ours_t, ours_o = both(out)
    prepared = ours_o.prepare(items)
    assert [list(map(int, s)) for s in prepared.input_ids] == ref_ids
    assert [list(map(int, s)) for s in prepared.token_type_ids] == ref_types
    report("duo-cross-encoder (duoBERT)", ours_t.compare_batch(items).p, ours_o.compare_batch(items).p,
           np.array(ref))


@pytest.mark.parametrize("truncation", ["fields", "reference"])
def test_mono_cross_encoder_matches_cross_encoder(tmp_path, truncation):
    """sentence-transformers CrossEncoder / monoBERT: ``tokenizer(q, d, truncation=True, max_length=L)``,
    one logit per candidate; p(a, b) = sigmoid(s_a - s_b). ``reference`` (L = 32 here) cuts by the
    tokenizer's longest-first rule; ``fields`` must agree wherever nothing is cut."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = build_wordpiece_bert(tmp_path / "monobert", num_labels=1, type_vocab_size=2)
    out = tmp_path / "mono-onnx"
    export_model(folder, "mono-cross-encoder", out, truncation=truncation, max_input_tokens=32,
                 parity_queries=1, parity_passages=3)
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = BertForSequenceClassification.from_pretrained(str(folder)).eval()
    passages = [*PASSAGES, LONG] if truncation == "reference" else PASSAGES
    items = items_of(QUERIES, passages)
    keys = list(dict.fromkeys((q, d) for q, a, b in items for d in (a, b)))
    enc = [tok(q, d, truncation=True, max_length=32 if truncation == "reference" else 512) for q, d in keys]
    with torch.no_grad():
        s = {k: float(model(input_ids=torch.tensor([e.input_ids]),
                            token_type_ids=torch.tensor([e.token_type_ids])).logits[0, 0])
             for k, e in zip(keys, enc, strict=True)}
    ref = np.array([1 / (1 + np.exp(-(s[(q, a)] - s[(q, b)]))) for q, a, b in items])
    ours_t, ours_o = both(out)
    prepared = ours_o.prepare(items)
    assert [list(map(int, x)) for x in prepared.input_ids] == [e.input_ids for e in enc]
    assert [list(map(int, x)) for x in prepared.token_type_ids] == [e.token_type_ids for e in enc]
    report(f"mono-cross-encoder {truncation}", ours_t.compare_batch(items).p, ours_o.compare_batch(items).p,
           ref)


# --- long inputs: each kind's default truncation is its reference's -----------------------------------
# Real DL19 passages joined to 300-700 words and queries of several lengths, on replicas whose tokenizers are
# trained on that text (so it tokenizes with few unknown pieces). Each reference's truncation is computed
# here with the reference's own logic; the project's code only produces the ids compared against it.
LONG_WORDS = (300, 450, 700)


@pytest.fixture(scope="module")
def dl19_texts(data_dir):
    import json

    folder = data_dir / "trec-dl-2019-passage"
    queries = [line.split("\t", 1)[1].strip() for line in (folder / "queries.tsv").read_text().splitlines()]
    passages = [json.loads(line)["text"] for line in (folder / "corpus.jsonl").read_text().splitlines()]
    return queries, passages


def joined(texts, words: int, start: int) -> str:
    """Consecutive ``texts`` from ``start`` joined and cut to ``words`` words."""
    out: list[str] = []
    i = start
    while len(out) < words:
        out.extend(texts[i % len(texts)].split())
        i += 1
    return " ".join(out[:words])


@pytest.fixture(scope="module")
def long_inputs(dl19_texts):
    """Three queries (one DL19 query; two and 27 joined: about 10 and 150 words) and three passages of
    300, 450 and 700 words."""
    queries, passages = dl19_texts
    qs = [queries[0], f"{queries[1]} {queries[2]}", " ".join(queries[3:30])]
    ps = [joined(passages, n, 40 * k) for k, n in enumerate(LONG_WORDS)]
    return qs, ps


@pytest.fixture(scope="module")
def corpus_text(dl19_texts):
    queries, passages = dl19_texts
    return [*queries, *passages[:3000]]


@pytest.fixture(scope="module")
def real_t5(tmp_path_factory, corpus_text):
    return build_castorini_t5(tmp_path_factory.mktemp("real-t5") / "duot5", corpus=corpus_text, vocab_size=1500)


@pytest.fixture(scope="module")
def real_bert(tmp_path_factory, corpus_text):
    return {
        labels: build_wordpiece_bert(tmp_path_factory.mktemp(f"real-bert{labels}") / "bert", num_labels=labels,
                                     type_vocab_size=types, corpus=corpus_text, vocab_size=1500)
        for labels, types in ((2, 3), (1, 2))
    }


@pytest.fixture(scope="module")
def real_llama(tmp_path_factory, corpus_text):
    return build_bpe_llama(tmp_path_factory.mktemp("real-bpe") / "chat-llm", corpus=corpus_text, vocab_size=1500)


def export_default(folder, kind, out, **options):
    """The kind's defaults (no truncation option), fp32 only: the CPU-default timing is not under test."""
    export_model(folder, kind, out, parity_queries=1, parity_passages=3, cpu_default="fp32", **options)
    return both(out)


def check_long(name, ours_torch, ours_onnx, items, ref_ids, ref_p, ref_types=None):
    prepared = ours_onnx.prepare(items)
    ids = [list(map(int, s)) for s in prepared.input_ids]
    assert ids == ref_ids, f"{name}: token ids differ from the reference's"
    if ref_types is not None:
        assert [list(map(int, s)) for s in prepared.token_type_ids] == ref_types
    assert max(len(x) for x in ref_ids) > 250, "the inputs are not long: the test would prove nothing"
    report(f"{name} long inputs", ours_torch.compare_batch(items).p, ours_onnx.compare_batch(items).p,
           np.asarray(ref_p, dtype=np.float64))


def test_long_duo_t5_matches_pygaggle(real_t5, long_inputs, tmp_path):
    qs, ps = long_inputs
    ours_t, ours_o = export_default(real_t5, "duo-t5", tmp_path / "duot5")
    ref_model = PygaggleT5(real_t5)
    items = items_of(qs, ps)
    prompts = [f"Query: {q} Document0: {a} Document1: {b} Relevant:" for q, a, b in items]
    ref_ids = [ref_model.ids(p) for p in prompts]
    assert sum(len(ref_model.sp.encode(p)) + 1 > 512 for p in prompts) > 0, "no prompt is cut at 512"
    check_long("duo-t5", ours_t, ours_o, items, ref_ids, ref_model.p_true(prompts))


def test_long_mono_t5_matches_pygaggle(real_t5, long_inputs, tmp_path):
    qs, ps = long_inputs
    ours_t, ours_o = export_default(real_t5, "mono-t5", tmp_path / "monot5")
    ref_model = PygaggleT5(real_t5)
    items = items_of(qs, ps)
    _keys, prompts, ref = mono_t5_reference(ref_model, items)
    assert sum(len(ref_model.sp.encode(p)) + 1 > 512 for p in prompts) > 0, "no prompt is cut at 512"
    prepared = ours_o.prepare(items)
    assert [list(map(int, s)) for s in prepared.input_ids] == [ref_model.ids(p) for p in prompts]
    report("mono-t5 long inputs", ours_t.compare_batch(items).p, ours_o.compare_batch(items).p, ref)


def llm_rankers_truncate_sp(sp, text, length=128):
    """llm-rankers ``truncate`` with the T5 (sentencepiece) tokenizer: the pieces' string, stripped."""
    return sp.decode_pieces(sp.encode(text, out_type=str)[:length]).strip()


def test_long_prp_t5_matches_llm_rankers(real_t5, long_inputs, tmp_path):
    qs, ps = long_inputs
    ours_t, ours_o = export_default(real_t5, "prp", tmp_path / "prp-t5")
    ref_model = PygaggleT5(real_t5, max_length=10**6)  # compare() cuts nothing
    sp = ref_model.sp
    decoder = [sp.pad_id(), sp.piece_to_id("▁Passage")]
    a_id, b_id = sp.piece_to_id("▁A"), sp.piece_to_id("▁B")
    items = items_of(qs, ps)
    prompts = [LLM_RANKERS_PROMPT.format(query=llm_rankers_truncate_sp(sp, q), doc1=llm_rankers_truncate_sp(sp, a),
                                         doc2=llm_rankers_truncate_sp(sp, b)) for q, a, b in items]
    ref_ids = [ref_model.ids(p) for p in prompts]
    logits = ref_model.logits_at(ref_ids, decoder)
    ref = torch.softmax(logits[:, [a_id, b_id]], dim=1)[:, 0].numpy()
    check_long("prp encoder-decoder", ours_t, ours_o, items, ref_ids, ref)


def test_long_prp_decoder_only_matches_llm_rankers(real_llama, long_inputs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    qs, ps = long_inputs
    ours_t, ours_o = export_default(real_llama, "prp", tmp_path / "prp-llm")
    tok = AutoTokenizer.from_pretrained(str(real_llama))
    llm = AutoModelForCausalLM.from_pretrained(str(real_llama)).eval()

    def truncate(text, length=128):  # llm-rankers run.py: ranker.truncate(text, args.run.query_length)
        return tok.convert_tokens_to_string(tok.tokenize(text)[:length])

    items = items_of(qs, ps)
    ref_ids, ref = llm_rankers_decoder_only(tok, llm, items, True, truncate)
    assert max(len(tok.tokenize(q)) for q in qs) > 128, "no query is cut"
    check_long("prp decoder-only", ours_t, ours_o, items, ref_ids, ref)


# BERT's tokenization.py (duoBERT ships it): BasicTokenizer + WordpieceTokenizer, re-implemented literally.
def _bert_is_whitespace(c):
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def _bert_is_control(c):
    return c not in "\t\n\r" and unicodedata.category(c).startswith("C")


def _bert_is_punctuation(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def _bert_is_chinese(cp):
    return any(lo <= cp <= hi for lo, hi in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


class BertFullTokenizer:
    """``tokenization.FullTokenizer(vocab_file, do_lower_case=True).tokenize`` and
    ``convert_tokens_to_ids``."""

    def __init__(self, vocab_file):
        self.vocab = {w: i for i, w in enumerate(vocab_file.read_text().splitlines())}

    def basic(self, text):
        text = "".join(" " if _bert_is_whitespace(c) else c for c in text
                       if not (ord(c) in (0, 0xFFFD) or _bert_is_control(c)))
        text = "".join(f" {c} " if _bert_is_chinese(ord(c)) else c for c in text)
        out = []
        for token in text.strip().split():
            token = unicodedata.normalize("NFD", token.lower())
            token = "".join(c for c in token if unicodedata.category(c) != "Mn")
            words, word = [], ""
            for c in token:
                if _bert_is_punctuation(c):
                    words += [word, c] if word else [c]
                    word = ""
                else:
                    word += c
            out.extend([*words, word] if word else words)
        return " ".join(out).split()

    def tokenize(self, text):
        out = []
        for word in self.basic(text):
            if len(word) > 100:
                out.append("[UNK]")
                continue
            start, pieces = 0, []
            while start < len(word):
                end, piece = len(word), None
                while start < end:
                    sub = ("##" if start else "") + word[start:end]
                    if sub in self.vocab:
                        piece = sub
                        break
                    end -= 1
                if piece is None:
                    pieces = ["[UNK]"]
                    break
                pieces.append(piece)
                start = end
            out.extend(pieces)
        return out

    def convert_to_bert_input(self, text, max_seq_length, add_cls):
        tokens = self.tokenize(text)
        if len(tokens) > max_seq_length - 2:
            tokens = tokens[: max_seq_length - 2]
        tokens = (["[CLS]"] if add_cls else []) + tokens + ["[SEP]"]
        return [self.vocab[t] for t in tokens]


def test_long_duo_cross_encoder_matches_duobert(real_bert, long_inputs, tmp_path):
    """duoBERT's convert_msmarco_to_duobert_tfrecord.py: query_ids = convert_to_bert_input(q, 64, cls),
    each doc convert_to_bert_input(d, (512 - len(query_ids)) // 2, no cls); segments 0 / 1 / 2;
    P(class 1) of the two-logit head."""
    from transformers import BertForSequenceClassification

    folder = real_bert[2]
    qs, ps = long_inputs
    ours_t, ours_o = export_default(folder, "duo-cross-encoder", tmp_path / "duobert")
    ref_tok = BertFullTokenizer(folder / "vocab.txt")
    model = BertForSequenceClassification.from_pretrained(str(folder)).eval()
    items = items_of(qs, ps)
    ref_ids, ref_types, ref = [], [], []
    for q, a, b in items:
        query_ids = ref_tok.convert_to_bert_input(q, 64, add_cls=True)
        da, db = (ref_tok.convert_to_bert_input(d, (512 - len(query_ids)) // 2, add_cls=False) for d in (a, b))
        ids = query_ids + da + db
        types = [0] * len(query_ids) + [1] * len(da) + [2] * len(db)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits[0]
        ref_ids.append(ids)
        ref_types.append(types)
        ref.append(float(torch.softmax(logits, dim=0)[1]))
    assert len({len(x) for x in ref_ids}) > 1  # the passages' length depends on the query's
    check_long("duo-cross-encoder (duoBERT)", ours_t, ours_o, items, ref_ids, ref, ref_types)


def test_long_mono_cross_encoder_matches_cross_encoder(real_bert, long_inputs, tmp_path):
    """sentence-transformers CrossEncoder.predict: ``tokenizer(q.strip(), d.strip(), padding=True,
    truncation="longest_first", max_length=None)`` (the tokenizer's model_max_length, 512)."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = real_bert[1]
    qs, ps = long_inputs
    ours_t, ours_o = export_default(folder, "mono-cross-encoder", tmp_path / "monobert")
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = BertForSequenceClassification.from_pretrained(str(folder)).eval()
    items = items_of(qs, ps)
    keys = list(dict.fromkeys((q, d) for q, a, b in items for d in (a, b)))
    enc = [tok(q.strip(), d.strip(), truncation="longest_first", max_length=None) for q, d in keys]
    with torch.no_grad():
        s = {k: float(model(input_ids=torch.tensor([e.input_ids]),
                            token_type_ids=torch.tensor([e.token_type_ids])).logits[0, 0])
             for k, e in zip(keys, enc, strict=True)}
    ref = [1 / (1 + np.exp(-(s[(q, a)] - s[(q, b)]))) for q, a, b in items]
    assert max(len(e.input_ids) for e in enc) == 512
    prepared = ours_o.prepare(items)
    assert [list(map(int, x)) for x in prepared.input_ids] == [e.input_ids for e in enc]
    assert [list(map(int, x)) for x in prepared.token_type_ids] == [e.token_type_ids for e in enc]
    report("mono-cross-encoder long inputs", ours_t.compare_batch(items).p, ours_o.compare_batch(items).p,
           np.array(ref))
