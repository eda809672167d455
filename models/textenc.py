"""Tokenization for the runtime: a ``tokenizers.Tokenizer`` read from ``tokenizer.json``, no transformers.

Truncation is explicit and per field: every query and passage is encoded alone (no special tokens) and cut
to its own token budget, so both passages of a pair always fit. The tokenizer's truncation and padding are
switched off once, at load, before the object is shared; afterwards it is only read (``encode`` and
``encode_batch`` take no lock and keep no state), so one ``TextEncoder`` serves concurrent requests.

The special-token layout of encoder models (``[CLS] x [SEP]`` and ``[CLS] x [SEP] y [SEP]`` for BERT,
``<s> x </s></s> y </s>`` for RoBERTa) is read off the tokenizer's own post-processor by encoding a probe,
so the runtime assembles exactly what the tokenizer would produce, with the fields cut to their budgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import MissingTokenizerError

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class SingleLayout:
    """Special tokens around one sequence: ``prefix x suffix``, with the token type of each part."""

    prefix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    type_x: int
    suffix: tuple[int, ...]
    suffix_types: tuple[int, ...]


@dataclass(frozen=True)
class PairLayout:
    """Special tokens around a pair: ``prefix x middle y suffix``, with the token type of each part."""

    prefix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    type_x: int
    middle: tuple[int, ...]
    middle_types: tuple[int, ...]
    type_y: int
    suffix: tuple[int, ...]
    suffix_types: tuple[int, ...]


@dataclass(frozen=True)
class Field:
    """One text encoded alone: its ids cut to the budget, whether it was cut, and the text that was kept."""

    ids: tuple[int, ...]
    truncated: bool
    text: str

    def cut(self, budget: int) -> Field:
        """The first ``budget`` ids (the kept text is not tracked: for kinds that feed ids, not prompts)."""
        if len(self.ids) <= budget:
            return self
        return Field(self.ids[:budget], True, "")


def _split_layout(ids: Sequence[int], types: Sequence[int], seq_ids: Sequence[int | None]):
    """Cut an encoded probe into runs: special tokens (sequence id None) and the probe's sequences."""
    runs: list[tuple[int | None, list[int], list[int]]] = []
    for tok, typ, seq in zip(ids, types, seq_ids, strict=True):
        if runs and runs[-1][0] == seq:
            runs[-1][1].append(tok)
            runs[-1][2].append(typ)
        else:
            runs.append((seq, [tok], [typ]))
    return runs


class TextEncoder:
    """Read-only wrapper of a fast tokenizer: per-field truncation and the model's special-token layout."""

    def __init__(self, folder: str | Path) -> None:
        path = Path(folder) / TOKENIZER_FILE
        if not path.is_file():
            raise MissingTokenizerError(
                f"tokenizer file missing: {path} (export writes it; re-export the model)"
            )
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise MissingTokenizerError(f"tokenizer file unreadable: {path}: {exc}") from exc
        tok.no_truncation()
        tok.no_padding()
        self._tok = tok
        self.path = path
        self.single = self._probe_single()
        self.pair = self._probe_pair()

    # --- layout probes ----------------------------------------------------------------------------
    def _probe_single(self) -> SingleLayout:
        enc = self._tok.encode("probe", add_special_tokens=True)
        runs = _split_layout(enc.ids, enc.type_ids, enc.sequence_ids)
        pre: list[tuple[list[int], list[int]]] = []
        post: list[tuple[list[int], list[int]]] = []
        type_x = 0
        seen = False
        for seq, ids, types in runs:
            if seq is None:
                (post if seen else pre).append((ids, types))
            else:
                seen = True
                type_x = types[0]
        return SingleLayout(
            prefix=tuple(i for ids, _ in pre for i in ids),
            prefix_types=tuple(t for _, ts in pre for t in ts),
            type_x=type_x,
            suffix=tuple(i for ids, _ in post for i in ids),
            suffix_types=tuple(t for _, ts in post for t in ts),
        )

    def _probe_pair(self) -> PairLayout | None:
        try:
            enc = self._tok.encode("probe", "probe", add_special_tokens=True)
        except Exception:  # a post-processor without a pair template
            return None
        runs = _split_layout(enc.ids, enc.type_ids, enc.sequence_ids)
        parts: dict[str, list[int]] = {"prefix": [], "middle": [], "suffix": []}
        ptypes: dict[str, list[int]] = {"prefix": [], "middle": [], "suffix": []}
        types_of = {0: 0, 1: 1}
        where = "prefix"
        for seq, ids, types in runs:
            if seq is None:
                parts[where].extend(ids)
                ptypes[where].extend(types)
            else:
                types_of[seq] = types[0]
                where = "middle" if seq == 0 else "suffix"
        return PairLayout(
            prefix=tuple(parts["prefix"]),
            prefix_types=tuple(ptypes["prefix"]),
            type_x=types_of[0],
            middle=tuple(parts["middle"]),
            middle_types=tuple(ptypes["middle"]),
            type_y=types_of[1],
            suffix=tuple(parts["suffix"]),
            suffix_types=tuple(ptypes["suffix"]),
        )

    # --- encoding ---------------------------------------------------------------------------------
    def fields(self, texts: Sequence[str], budget: int) -> list[Field]:
        """Encode each text alone (no special tokens) and cut it to ``budget`` tokens."""
        if not texts:
            return []
        out = []
        for text, enc in zip(
            texts, self._tok.encode_batch(list(texts), add_special_tokens=False), strict=True
        ):
            ids = enc.ids
            if len(ids) <= budget:
                out.append(Field(tuple(ids), False, text))
            else:
                end = enc.offsets[budget - 1][1] if budget > 0 else 0
                out.append(Field(tuple(ids[:budget]), True, text[:end]))
        return out

    def decoded_fields(self, texts: Sequence[str], budget: int) -> list[Field]:
        """llm-rankers' ``truncate``: every text becomes ``convert_tokens_to_string(tokenize(text)[:budget])``
        (the tokenizer's decoder over the kept tokens, or the tokens joined by spaces where it has none), cut
        or not."""
        if not texts:
            return []
        decoder = self._tok.decoder
        out = []
        for enc in self._tok.encode_batch(list(texts), add_special_tokens=False):
            tokens = enc.tokens[:budget]
            text = decoder.decode(tokens) if decoder is not None else " ".join(tokens)
            out.append(Field(tuple(enc.ids[:budget]), len(enc.ids) > budget, text))
        return out

    def encode(self, texts: Sequence[str], *, add_special_tokens: bool) -> list[list[int]]:
        """Encode whole rendered prompts; special tokens as the tokenizer's post-processor adds them."""
        if not texts:
            return []
        return [enc.ids for enc in self._tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)]

    def single_token_id(self, candidates: Sequence[str]) -> int | None:
        """Id of the first candidate string that encodes to exactly one token, else None."""
        for text in candidates:
            ids = self._tok.encode(text, add_special_tokens=False).ids
            if len(ids) == 1:
                return ids[0]
        return None

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)
