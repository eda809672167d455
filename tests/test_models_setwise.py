"""The ``setwise`` kind against a literal re-implementation of llm-rankers' setwise scoring (ielab/llm-rankers
``llmrankers/setwise.py`` at b36517bf: ``SetwiseLlmRanker.compare``, its ``likelihood`` read-out for T5 and its
``generation`` read-out for decoder-only chat models, and ``truncate`` as ``run.py`` applies it), on tiny random
replicas whose tokenizers are trained here with the setwise prompt in their corpus (so that the labels A..J are
single tokens, as in Flan-T5's and SmolLM2's vocabularies); long passages included. Torch and ONNX fp32 both."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")

from rerank.models import export_model, load_model  # noqa: E402
from rerank.models.errors import ModelError, UnsupportedOperationError  # noqa: E402
from rerank.models.setwise import setwise_prompt  # noqa: E402
from rerank.models.testing import (  # noqa: E402
    SAMPLE_PASSAGES,
    SAMPLE_QUERIES,
    WORDS,
    build_bpe_llama,
    build_castorini_t5,
)

CHARACTERS = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L",
              "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W"]
# the setwise prompt with the labels A..J in the replicas' corpus, so that each label is one token (as in Flan-T5's
# and SmolLM2's vocabularies)
EXTRA = [setwise_prompt("what", list("xyzwvutsrq")) + " <pad> Passage " + " ".join(CHARACTERS[:10])]
LONG = " ".join(WORDS * 2)
QUERY_LENGTH, PASSAGE_LENGTH = 12, 24  # the export's budgets = llm-rankers' --query_length/--passage_length
TOL = 1e-4


def reference_prompt(query: str, docs: list[str]) -> str:
    """``SetwiseLlmRanker.compare``'s input_text, statement for statement."""
    passages = "\n\n".join([f'Passage {CHARACTERS[i]}: "{doc}"' for i, doc in enumerate(docs)])
    input_text = f'Given a query "{query}", which of the following passages is the most relevant one to the query?\n\n' \
                 + passages + '\n\nOutput only the passage label of the most relevant passage:'  # noqa: E501
    return input_text


def truncate(tokenizer, text, length):
    """``LlmRanker.truncate`` (run.py cuts every query and passage with it)."""
    return tokenizer.convert_tokens_to_string(tokenizer.tokenize(text)[:length])


def groups_of(passages: list[str]) -> list[list[str]]:
    return [passages[:2], passages[:3], [passages[2], LONG, passages[0]], [*passages, LONG], [LONG, *passages[::-1]]]


def assert_close(ours_torch, ours_onnx, ref, what):
    dt = max(float(np.abs(a - b).max()) for a, b in zip(ours_torch, ref, strict=True))
    do = max(float(np.abs(a - b).max()) for a, b in zip(ours_onnx, ref, strict=True))
    spread = max(float(r.max() - r.min()) for r in ref)
    print(f"\nFIDELITY setwise {what}: calls {len(ref)} max|dp| torch {dt:.2e} onnx {do:.2e}")
    assert dt <= TOL and do <= TOL, (dt, do)
    assert spread > 0.01, "the replica's distributions do not vary: the test would prove nothing"


def both(folder):
    return load_model(folder, backend="torch", attn_implementation="eager"), load_model(folder, backend="onnx",
                                                                                        variant="fp32")


@pytest.fixture(scope="module")
def t5_export(tmp_path_factory):
    base = tmp_path_factory.mktemp("setwise-t5")
    src = build_castorini_t5(base / "flan-t5", extra_lines=EXTRA)
    export_model(src, "setwise", base / "out", max_query_tokens=QUERY_LENGTH, max_passage_tokens=PASSAGE_LENGTH,
                 parity_queries=1, parity_passages=3)
    return src, base / "out"


def test_flan_t5_likelihood_matches_llm_rankers(t5_export):
    """T5: ``T5Tokenizer`` (the slow tokenizer), ``tokenizer(input_text)``, decoder ids of ``"<pad> Passage"``,
    the softmax over the vocabulary at the next step, the probabilities of the labels' tokens (the last id of
    ``"<pad> Passage X"``); ours is the softmax over those K logits = the reference's K probabilities renormalised,
    and the winner (``ranked[0][0]``) is the same."""
    from transformers import T5ForConditionalGeneration, T5Tokenizer

    src, out = t5_export
    tokenizer = T5Tokenizer.from_pretrained(str(src))
    llm = T5ForConditionalGeneration.from_pretrained(str(src)).eval()
    decoder_input_ids = tokenizer.encode("<pad> Passage", return_tensors="pt", add_special_tokens=False)
    # batch_encode_plus (gone in transformers 5) is the tokenizer called on a list. The reference encodes all 23
    # labels, each one piece in Flan-T5's vocabulary; this replica's has single pieces for A..J only (K..N, S..V
    # come out as "▁" + letter and would pad the others), so the batch is over the 10 labels the export uses
    target_token_ids = tokenizer([f"<pad> Passage {CHARACTERS[i]}" for i in range(10)],
                                 return_tensors="pt", add_special_tokens=False, padding=True).input_ids[:, -1]
    query = SAMPLE_QUERIES[0]
    groups = groups_of(SAMPLE_PASSAGES)
    ref, ref_ids, winners = [], [], []
    for docs in groups:
        input_text = reference_prompt(truncate(tokenizer, query, QUERY_LENGTH),
                                      [truncate(tokenizer, d, PASSAGE_LENGTH) for d in docs])
        input_ids = tokenizer(input_text, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = llm(input_ids=input_ids, decoder_input_ids=decoder_input_ids).logits[0][-1]
            distributions = torch.softmax(logits, dim=0)
            scores = distributions[target_token_ids[: len(docs)]]
            ranked = sorted(zip(CHARACTERS[: len(docs)], scores, strict=True), key=lambda x: x[1], reverse=True)
        ref.append((scores / scores.sum()).numpy().astype(np.float64))
        ref_ids.append(input_ids[0].tolist())
        winners.append(ranked[0][0])
    ours_t, ours_o = both(out)
    assert ours_o.spec.options["label_token_ids"] == target_token_ids[:10].tolist()
    assert ours_o.spec.options["decoder_ids"] == decoder_input_ids[0].tolist()
    prepared = ours_o._kind.prepare_sets([query] * len(groups), groups)
    assert [list(map(int, s)) for s in prepared.input_ids] == ref_ids
    assert prepared.item_truncated.tolist() == [False, False, True, True, True]
    got_t, _ = ours_t.compare_sets(query, groups)
    got_o, stats = ours_o.compare_sets(query, groups)
    assert [CHARACTERS[int(np.argmax(p))] for p in got_o] == winners
    assert stats.tokens == sum(len(i) for i in ref_ids)
    assert_close(got_t, got_o, ref, "encoder-decoder (likelihood)")


@pytest.fixture(scope="module")
def llama_src(tmp_path_factory):
    """The BPE Llama replica with its label tokens' (tied) embedding rows scaled up, so that its greedy token
    after " Passage:" is a label, as a trained model's is: then the reference's generated label is checked against
    our argmax, not skipped."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_bpe_llama(tmp_path_factory.mktemp("setwise-llm") / "chat-llm", extra_lines=EXTRA)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    ids = [tokenizer.encode(f" {c}", add_special_tokens=False)[0] for c in CHARACTERS[:10]]
    with torch.no_grad():
        model.get_output_embeddings().weight[ids] *= 40.0
    model.save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("chat", [True, False], ids=["chat-template", "no-chat-template"])
def test_decoder_only_generation_matches_llm_rankers(llama_src, tmp_path, chat):
    """Decoder-only: ``apply_chat_template([user turn], tokenize=False, add_generation_prompt=True) + " Passage:"``,
    ``tokenizer(prompt)``, one greedy token decoded and upper-cased as the label. Ours reads the K label logits at
    that position: the same ids, and the same label wherever the greedy token is a label; the distribution is the
    softmax over the K label logits of the reference's forward pass."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "setwise-llm"
    export_model(llama_src, "setwise", out, chat_template=chat, max_query_tokens=QUERY_LENGTH,
                 max_passage_tokens=PASSAGE_LENGTH, parity_queries=1, parity_passages=3)
    tokenizer = AutoTokenizer.from_pretrained(str(llama_src))
    llm = AutoModelForCausalLM.from_pretrained(str(llama_src)).eval()
    label_ids = [tokenizer.encode(f" {c}", add_special_tokens=False) for c in CHARACTERS[:10]]
    assert all(len(ids) == 1 for ids in label_ids), "the labels are single tokens here, as in SmolLM2"
    label_ids = [ids[0] for ids in label_ids]
    query = SAMPLE_QUERIES[1]
    groups = groups_of(SAMPLE_PASSAGES)
    ref, ref_ids, generated = [], [], []
    for docs in groups:
        input_text = reference_prompt(truncate(tokenizer, query, QUERY_LENGTH),
                                      [truncate(tokenizer, d, PASSAGE_LENGTH) for d in docs])
        prompt = input_text
        if chat:
            conversation = [{"role": "user", "content": input_text}]
            prompt = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        prompt += " Passage:"
        input_ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            output_ids = llm.generate(input_ids, do_sample=False, max_new_tokens=1, pad_token_id=0)[0]
            last = llm(input_ids=input_ids).logits[0, -1]
        generated.append(tokenizer.decode(output_ids[input_ids.shape[1]:], skip_special_tokens=True).strip().upper())
        ref.append(torch.softmax(last[label_ids[: len(docs)]], dim=0).numpy().astype(np.float64))
        ref_ids.append(input_ids[0].tolist())
    ours_t, ours_o = both(out)
    assert ours_o.spec.options["label_token_ids"] == label_ids
    prepared = ours_o._kind.prepare_sets([query] * len(groups), groups)
    assert [list(map(int, s)) for s in prepared.input_ids] == ref_ids
    got_t, _ = ours_t.compare_sets(query, groups)
    got_o, _ = ours_o.compare_sets(query, groups)
    labelled = [(p, output) for p, output, docs in zip(got_o, generated, groups, strict=True)
                if output in CHARACTERS[: len(docs)]]
    print(f"\ngreedy tokens that are labels: {len(labelled)} of {len(groups)} ({generated})")
    assert len(labelled) >= 2, generated  # (a label beyond the K shown: llm-rankers falls back to slot A)
    for p, output in labelled:
        assert CHARACTERS[int(np.argmax(p))] == output
    assert_close(got_t, got_o, ref, f"decoder-only chat={chat}")


def test_pairwise_face_and_bad_calls(t5_export):
    """A pair is the call with K = 2 (p = the first label's share); too many passages or a pairwise kind asked for
    sets is an error naming the limit."""
    _, out = t5_export
    model = load_model(out, backend="onnx", variant="fp32")
    a, b = SAMPLE_PASSAGES[:2]
    probs, _ = model.compare_sets(SAMPLE_QUERIES[0], [[a, b]])
    assert model.compare(SAMPLE_QUERIES[0], [(a, b)])[0] == pytest.approx(probs[0][0], abs=1e-9)
    with pytest.raises(ModelError, match=r"2 to 10 passages \(max_k\)"):
        model.compare_sets(SAMPLE_QUERIES[0], [[a] * 11])
    with pytest.raises(ModelError, match="2 to 10 passages"):
        model.compare_sets(SAMPLE_QUERIES[0], [[a]])
    with pytest.raises(ModelError, match="passage 1 of group 0 is empty"):
        model.compare_sets(SAMPLE_QUERIES[0], [[a, " "]])


def test_pairwise_kinds_take_no_sets(tmp_path):
    from rerank.models.testing import build_minilm_cross_encoder

    src = build_minilm_cross_encoder(tmp_path / "ce")
    export_model(src, "duo-cross-encoder", tmp_path / "out", parity_queries=1, parity_passages=2)
    with pytest.raises(UnsupportedOperationError, match="takes pairs, not sets"):
        load_model(tmp_path / "out").compare_sets("q", [["a", "b"]])


def test_pipeline_ranks_with_setwise_calls_as_kwise_observations(t5_export):
    """rerank.pipeline.rerank_setwise: each compare_sets call is one K-wise observation and one call of budget;
    usage counts calls, candidates shown and prompt tokens. Heapsort gives llm-rankers' order; a budgeted sampler
    is aggregated (Plackett-Luce) and keeps to its budget."""
    from rerank.aggregation.kwise import run_kwise_sampler
    from rerank.aggregation.kwise.samplers import setwise_heapsort
    from rerank.pipeline import Candidate, RequestError, rerank_setwise

    _, out = t5_export
    model = load_model(out, backend="onnx", variant="fp32")
    texts = [*SAMPLE_PASSAGES, *(f"{p} {w}" for p in SAMPLE_PASSAGES for w in WORDS[:2])]
    candidates = [Candidate(f"d{i}", t) for i, t in enumerate(texts)]
    query = SAMPLE_QUERIES[0]
    ranked, usage = rerank_setwise(query, candidates, model, k=3, top_n=5)
    direct = run_kwise_sampler(setwise_heapsort, len(texts), 10_000,
                               lambda gs: model.compare_sets(query, [[texts[i] for i in g] for g in gs])[0],
                               k=3, top_n=5)
    assert [r.index for r in ranked] == direct.order.tolist()
    assert usage.calls == direct.used and usage.candidates_shown >= 2 * usage.calls and usage.tokens > 0
    ranked, usage = rerank_setwise(query, candidates, model, sampler="kwise-random", k=4, budget=7,
                                   aggregator="plackett-luce")
    assert usage.calls == 7 and sorted(r.index for r in ranked) == list(range(len(texts)))
    with pytest.raises(RequestError, match=r"options\.set_size: must be between 2 and"):
        rerank_setwise(query, candidates, model, k=11)
    with pytest.raises(RequestError, match=r"options\.sampler: unknown kwise sampler 'heapsort'"):
        rerank_setwise(query, candidates, model, sampler="heapsort")
