"""The pairwise model: ``prepare`` (tokenize) -> ``run`` (backend, length-sorted batches) -> ``postprocess``.

A ``PairwiseModel`` joins three immutable parts: a *kind* (how texts become token sequences and how the
graph's outputs become p), a *backend* (ONNX Runtime or torch eager, same graph contract) and runtime
options. Nothing about a request is stored on it: every stage takes its input and returns a new value, so
one model serves concurrent requests from many threads, and the stages can run in a pipeline (tokenize
request n+1 while the backend runs request n).

Graph contract (the same for the ONNX graph and the torch wrapper module):
inputs ``input_ids``, ``attention_mask`` (int64 ``[batch, seq]``, right padding) and, where the manifest
lists it, ``token_type_ids``; one output: ``logit`` (float32 ``[batch]``, the log-odds that a is preferred,
p = sigmoid(logit)) for pairwise kinds, ``embedding`` (float32 ``[batch, dim]``, L2-normalised) for the
bi-encoder.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from .errors import EmptyTextError, ModelError, TextTooLongError, UnsupportedOperationError

Item = tuple[str, str, str]

DEFAULT_MAX_CHARS = 20_000
DEFAULT_MAX_TOKENS_PER_BATCH = 16_384
DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_CACHE_ITEMS = 16_384  # output rows kept by kinds whose sequences recur (bi-encoder texts)


def default_batch_size(provider: str) -> int:
    """Sequences per backend call when none is set, by what runs the graph (measured in
    ``bench/models_bench.py``). On a CPU a call costs its tokens: padding is waste and one sequence's
    matrix products already keep every core busy, so ONNX Runtime runs one sequence per call (also what
    makes a dynamically quantized graph's answers independent of the batch: its activation scales are
    computed per call). Torch eager pays about a millisecond of Python per call: 8. A GPU needs big batches
    to be busy: 64."""
    if "CUDA" in provider or provider.startswith("torch:cuda"):
        return DEFAULT_MAX_BATCH_SIZE
    if provider.startswith("torch:"):
        return 8
    return 1


@dataclass(frozen=True)
class ModelSpec:
    """What the runtime needs to know about a model; stored in ``manifest.json`` (see ``manifest.py``)."""

    kind: str
    inputs: tuple[str, ...]
    output: str
    max_query_tokens: int
    max_passage_tokens: int
    pad_token_id: int
    max_positions: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "inputs": list(self.inputs),
            "output": self.output,
            "max_query_tokens": self.max_query_tokens,
            "max_passage_tokens": self.max_passage_tokens,
            "pad_token_id": self.pad_token_id,
            "max_positions": self.max_positions,
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        return cls(
            kind=str(data["kind"]),
            inputs=tuple(str(x) for x in data["inputs"]),
            output=str(data["output"]),
            max_query_tokens=int(data["max_query_tokens"]),
            max_passage_tokens=int(data["max_passage_tokens"]),
            pad_token_id=int(data["pad_token_id"]),
            max_positions=None if data.get("max_positions") is None else int(data["max_positions"]),
            options=dict(data.get("options") or {}),
        )


@dataclass(frozen=True)
class RuntimeOptions:
    """Per-model runtime settings (not per request)."""

    max_tokens_per_batch: int = DEFAULT_MAX_TOKENS_PER_BATCH
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_chars: int = DEFAULT_MAX_CHARS
    # graph outputs kept per model, keyed by input sequence, for kinds that reuse sequences (0 = off)
    cache_items: int = DEFAULT_CACHE_ITEMS

    def __post_init__(self) -> None:
        for name in ("max_tokens_per_batch", "max_batch_size", "max_chars"):
            if int(getattr(self, name)) < 1:
                raise ModelError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.cache_items) < 0:
            raise ModelError(f"cache_items must be >= 0, got {self.cache_items}")


@dataclass(frozen=True)
class Prepared:
    """Output of the tokenize stage: model input sequences plus what postprocess needs to map them back."""

    n_items: int
    input_ids: list[Sequence[int]]
    token_type_ids: list[Sequence[int]] | None
    index: np.ndarray | None
    truncated_sequences: int
    truncated_items: int
    tokenize_s: float = 0.0
    item_truncated: np.ndarray | None = None  # per item: its p depends on a cut text


@dataclass(frozen=True)
class RunOutput:
    """Output of the run stage: one row of graph output per prepared sequence, in prepared order."""

    values: np.ndarray
    batches: int
    tokens: int
    padded_tokens: int
    run_s: float
    cached_sequences: int = 0  # rows taken from the model's sequence cache instead of run


@dataclass(frozen=True)
class CompareStats:
    """Per-call figures. ``truncated_sequences``: model inputs in which a field was cut to its budget;
    ``truncated_items``: items whose p depends on a cut text."""

    items: int
    sequences: int
    truncated_sequences: int
    truncated_items: int
    batches: int
    tokens: int
    padded_tokens: int
    tokenize_s: float
    run_s: float
    postprocess_s: float
    cached_sequences: int = 0


@dataclass(frozen=True)
class CompareResult:
    """p[i] = P(a_i more relevant than b_i | q_i), float64, with the call's stats; ``truncated[i]``: item
    i's p depends on a text cut to its budget (None where the kind does not say per item)."""

    p: np.ndarray
    stats: CompareStats
    truncated: np.ndarray | None = None

    def __array__(self, dtype=None, copy=None):
        return self.p if dtype is None else self.p.astype(dtype)


class Backend(Protocol):
    """Runs the graph contract on one padded batch."""

    name: str
    provider: str
    inputs: tuple[str, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray: ...


class Kind:
    """Runtime half of a model kind: texts -> sequences (``prepare``) and graph output -> p (``postprocess``).

    The export half (``describe``: read a source folder into a ``ModelSpec``; ``torch_module``: the wrapper
    module whose forward is the graph contract) lives on the same class as classmethods and imports torch
    and transformers lazily, so the runtime needs neither.
    """

    name: ClassVar[str]
    output: ClassVar[str] = "logit"
    supports_embed: ClassVar[bool] = False
    # the same input sequence recurs across calls (a bi-encoder's texts in every sampling round), so its
    # graph output is worth keeping in the model's SequenceCache
    reuses_sequences: ClassVar[bool] = False
    default_max_query_tokens: ClassVar[int] = 64
    default_max_passage_tokens: ClassVar[int] = 192
    export_options: ClassVar[frozenset[str]] = frozenset()  # kind-specific options ``describe`` accepts
    # transformers auto classes whose architectures the kind exports (checked before any weight is read)
    architectures: ClassVar[tuple[str, ...]] = ("AutoModel",)
    # bumped when the kind's scoring changes, so embedded exports made by older code are redone
    revision: ClassVar[int] = 1
    # one score per (query, passage): p(a, b) is a function of two scores, and ``prepare_scores`` /
    # ``postprocess_scores`` give the scores themselves (cascade stages rank by them, one call per candidate)
    pointwise: ClassVar[bool] = False
    # a pairwise LLM (seq2seq or causal prompt): the export measures its CPU backends and keeps the fastest
    # that holds the fp32 decisions as the CPU default (models/cpu_default.py)
    measured_cpu_default: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec, encoder: Any) -> None:
        self.spec = spec
        self.encoder = encoder
        self.check()

    def check(self) -> None:
        """Raise ``ModelError`` when the spec's budgets cannot fit the model."""
        longest = self.max_sequence_tokens()
        if self.spec.max_positions is not None and longest > self.spec.max_positions:
            raise ModelError(
                f"{self.name}: budgets give sequences of up to {longest} tokens (query "
                f"{self.spec.max_query_tokens}, passage {self.spec.max_passage_tokens}) but the model "
                f"takes at most {self.spec.max_positions} positions"
            )
        if self.spec.max_query_tokens < 1 or self.spec.max_passage_tokens < 1:
            raise ModelError("token budgets must be >= 1")

    def max_sequence_tokens(self) -> int:
        raise NotImplementedError

    def prepare(self, items: Sequence[Item]) -> Prepared:
        raise NotImplementedError

    def postprocess(self, prepared: Prepared, outputs: np.ndarray) -> np.ndarray:
        """Default for pairwise kinds: one logit per item, p = sigmoid(logit)."""
        return sigmoid(outputs.astype(np.float64).reshape(-1))

    def prepare_texts(self, texts: Sequence[str], role: str) -> Prepared:
        raise UnsupportedOperationError(f"model kind {self.name!r} has no embeddings (only 'bi-encoder')")

    def prepare_scores(self, query: str, passages: Sequence[str]) -> Prepared:
        raise UnsupportedOperationError(f"model kind {self.name!r} is pairwise: it has no per-passage score")

    def postprocess_scores(self, prepared: Prepared, outputs: np.ndarray) -> np.ndarray:
        raise UnsupportedOperationError(f"model kind {self.name!r} is pairwise: it has no per-passage score")

    # --- export half ------------------------------------------------------------------------------
    @classmethod
    def describe(cls, source: Path, hf_tokenizer: Any, hf_config: Any, **options: Any) -> ModelSpec:
        raise NotImplementedError

    @classmethod
    def torch_module(
        cls, source: Path, spec: ModelSpec, *, dtype: Any = None, attn_implementation: str = "eager"
    ):
        raise NotImplementedError


def sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float64)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def check_text(text: Any, what: str, max_chars: int) -> None:
    if not isinstance(text, str):
        raise ModelError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise EmptyTextError(f"{what} is empty")
    if len(text) > max_chars:
        raise TextTooLongError(f"{what} has {len(text)} characters; the limit (max_chars) is {max_chars}")


def make_batches(lengths: Sequence[int], max_tokens: int, max_batch: int) -> list[np.ndarray]:
    """Group sequence indices, longest first, so that batch_size * longest <= max_tokens (at least one)."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    n = len(order)
    while start < n:
        longest = max(1, int(lengths[order[start]]))
        size = max(1, min(max_batch, max_tokens // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


def collate(
    input_ids: Sequence[Sequence[int]],
    token_type_ids: Sequence[Sequence[int]] | None,
    rows: np.ndarray,
    pad_id: int,
    inputs: Sequence[str],
) -> dict[str, np.ndarray]:
    """Right-padded int64 feeds for the sequences ``rows``."""
    width = max(len(input_ids[r]) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64) if "token_type_ids" in inputs else None
    for j, r in enumerate(rows):
        seq = input_ids[r]
        ids[j, : len(seq)] = seq
        mask[j, : len(seq)] = 1
        if types is not None and token_type_ids is not None:
            types[j, : len(seq)] = token_type_ids[r]
    feeds = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        feeds["token_type_ids"] = types
    return feeds


class SequenceCache:
    """Graph output rows by input sequence (token ids and types): a bounded, thread-safe LRU.

    Content-addressed (a 16-byte BLAKE2b of the sequence), so it holds no request state: any caller asking
    for a sequence gets the row the graph gives for it. It makes a bi-encoder encode each text once across
    a request's sampling rounds (and across requests that share texts), not once per round."""

    def __init__(self, max_items: int) -> None:
        if max_items < 1:
            raise ModelError(f"cache size must be >= 1, got {max_items}")
        self.max_items = int(max_items)
        self._rows: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(ids: Sequence[int], types: Sequence[int] | None) -> bytes:
        h = hashlib.blake2b(np.asarray(ids, dtype=np.int64).tobytes(), digest_size=16)
        if types is not None:
            h.update(b"|" + np.asarray(types, dtype=np.int8).tobytes())
        return h.digest()

    def __len__(self) -> int:
        return len(self._rows)

    def get_many(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        with self._lock:
            found = [self._rows.get(k) for k in keys]
            for k, row in zip(keys, found, strict=True):
                if row is not None:
                    self._rows.move_to_end(k)
            hit = sum(r is not None for r in found)
            self.hits += hit
            self.misses += len(keys) - hit
        return found

    def put_many(self, keys: Sequence[bytes], rows: np.ndarray) -> None:
        with self._lock:
            for k, row in zip(keys, rows, strict=True):
                self._rows[k] = np.array(row)  # a copy: a view would keep its whole batch alive
                self._rows.move_to_end(k)
            while len(self._rows) > self.max_items:
                self._rows.popitem(last=False)


class PairwiseModel:
    """A loaded pairwise preference model. Thread-safe: it holds no per-request state.

    ``compare(query, pairs)`` -> p per pair; ``compare_batch(items)`` -> ``CompareResult`` (p and stats);
    ``embed(texts)`` for bi-encoders. ``prepare``/``run``/``postprocess`` are the three stages.
    """

    def __init__(
        self,
        kind: Kind,
        backend: Backend,
        *,
        name: str = "",
        options: RuntimeOptions | None = None,
        path: Path | None = None,
        variant: str | None = None,
    ) -> None:
        self._kind = kind
        self.backend = backend
        self.name = name
        self.options = options or RuntimeOptions()
        self.path = path
        self.variant = variant
        self.cache = (
            SequenceCache(self.options.cache_items)
            if kind.reuses_sequences and self.options.cache_items > 0
            else None
        )

    # --- description ------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self._kind.name

    @property
    def spec(self) -> ModelSpec:
        return self._kind.spec

    @property
    def provider(self) -> str:
        """What really runs the graph: an ONNX Runtime provider name, or ``torch:<device>:<dtype>``."""
        return self.backend.provider

    @property
    def max_query_tokens(self) -> int:
        return self.spec.max_query_tokens

    @property
    def max_passage_tokens(self) -> int:
        return self.spec.max_passage_tokens

    def __repr__(self) -> str:
        return (
            f"PairwiseModel(name={self.name!r}, kind={self.kind!r}, backend={self.backend.name!r}, "
            f"provider={self.provider!r}, variant={self.variant!r})"
        )

    # --- stages -----------------------------------------------------------------------------------
    def validate(self, items: Sequence[Item]) -> None:
        limit = self.options.max_chars
        for i, item in enumerate(items):
            if not isinstance(item, (tuple, list)) or len(item) != 3:
                raise ModelError(f"item {i} must be a (query, a, b) tuple of strings")
            q, a, b = item
            check_text(q, f"query of item {i}", limit)
            check_text(a, f"passage a of item {i}", limit)
            check_text(b, f"passage b of item {i}", limit)

    def prepare(self, items: Sequence[Item]) -> Prepared:
        """Tokenize stage (validates the texts first)."""
        self.validate(items)
        t0 = time.perf_counter()
        prepared = self._kind.prepare(items)
        return replace(prepared, tokenize_s=time.perf_counter() - t0)

    def run(self, prepared: Prepared, *, use_cache: bool = True) -> RunOutput:
        """Run stage: length-sorted batches under ``max_tokens_per_batch``; rows back in prepared order.
        Sequences in the model's cache (kinds that reuse sequences) are not run again."""
        t0 = time.perf_counter()
        seqs, types = prepared.input_ids, prepared.token_type_ids
        if not seqs:
            empty = np.zeros((0,), dtype=np.float32)
            return RunOutput(empty, 0, 0, 0, 0.0)
        out: np.ndarray | None = None
        todo = np.arange(len(seqs))
        keys: list[bytes] = []
        cache = self.cache if use_cache else None
        if cache is not None:
            keys = [SequenceCache.key(s, types[i] if types is not None else None) for i, s in enumerate(seqs)]
            found = cache.get_many(keys)
            todo = np.asarray([i for i, row in enumerate(found) if row is None], dtype=np.int64)
            known = [(i, row) for i, row in enumerate(found) if row is not None]
            if known:
                out = np.empty((len(seqs), *known[0][1].shape), dtype=np.float32)
                for i, row in known:
                    out[i] = row
        lengths = [len(seqs[i]) for i in todo]
        batches = make_batches(lengths, self.options.max_tokens_per_batch, self.options.max_batch_size)
        padded = 0
        for local in batches:
            rows = todo[local]
            feeds = collate(seqs, types, rows, self.spec.pad_token_id, self.backend.inputs)
            padded += feeds["input_ids"].size
            values = np.asarray(self.backend.run(feeds), dtype=np.float32)
            if out is None:
                out = np.empty((len(seqs), *values.shape[1:]), dtype=np.float32)
            out[rows] = values
        if out is None:
            raise ModelError("the model produced no output")
        if cache is not None and len(todo):
            cache.put_many([keys[i] for i in todo], out[todo])
        return RunOutput(
            out, len(batches), int(sum(lengths)), padded, time.perf_counter() - t0, len(seqs) - len(todo)
        )

    def postprocess(self, prepared: Prepared, output: RunOutput) -> CompareResult:
        t0 = time.perf_counter()
        p = self._kind.postprocess(prepared, output.values) if prepared.n_items else np.zeros(0)
        stats = CompareStats(
            items=prepared.n_items,
            sequences=len(prepared.input_ids),
            truncated_sequences=prepared.truncated_sequences,
            truncated_items=prepared.truncated_items,
            batches=output.batches,
            tokens=output.tokens,
            padded_tokens=output.padded_tokens,
            tokenize_s=prepared.tokenize_s,
            run_s=output.run_s,
            postprocess_s=time.perf_counter() - t0,
            cached_sequences=output.cached_sequences,
        )
        return CompareResult(p=p, stats=stats, truncated=prepared.item_truncated)

    # --- public calls -----------------------------------------------------------------------------
    def compare_batch(self, items: Sequence[Item]) -> CompareResult:
        """p for a batch of (query, a, b) items, possibly of different queries, with the call's stats."""
        prepared = self.prepare(items)
        return self.postprocess(prepared, self.run(prepared))

    def compare_with_stats(self, query: str, pairs: Sequence[tuple[str, str]]) -> CompareResult:
        check_text(query, "query", self.options.max_chars)
        return self.compare_batch([(query, a, b) for a, b in pairs])

    def compare(self, query: str, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """p[i] = P(pairs[i][0] more relevant to ``query`` than pairs[i][1]), float64."""
        return self.compare_with_stats(query, pairs).p

    @property
    def pointwise(self) -> bool:
        """True when the kind scores each passage alone (bi-encoder, mono kinds): see ``score``."""
        return self._kind.pointwise

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """Per-passage relevance scores (float64; higher = more relevant) of a pointwise kind: the scale p
        is built from, p(a, b) = sigmoid((s_a - s_b) / T). Each distinct passage is run once."""
        check_text(query, "query", self.options.max_chars)
        for i, text in enumerate(passages):
            check_text(text, f"passage {i}", self.options.max_chars)
        prepared = self._kind.prepare_scores(query, passages)
        if not len(passages):
            return np.zeros(0)
        return self._kind.postprocess_scores(prepared, self.run(prepared).values)

    def embed(self, texts: Sequence[str], *, role: str = "passage") -> np.ndarray:
        """L2-normalised float32 embeddings ``[len(texts), dim]`` (bi-encoder only).

        ``role`` is ``"query"`` or ``"passage"``: it picks the token budget (and the prefix, if any)."""
        if not self._kind.supports_embed:
            raise UnsupportedOperationError(f"model kind {self.kind!r} has no embeddings (only 'bi-encoder')")
        if role not in ("query", "passage"):
            raise ModelError(f"role must be 'query' or 'passage', got {role!r}")
        for i, text in enumerate(texts):
            check_text(text, f"text {i}", self.options.max_chars)
        prepared = self._kind.prepare_texts(texts, role)
        values = self.run(prepared, use_cache=role == "query").values  # a corpus would only churn the cache
        if not len(texts):
            return np.zeros((0, 0), dtype=np.float32)
        return np.ascontiguousarray(values[np.asarray(prepared.index, dtype=np.int64)], dtype=np.float32)
