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

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .batching import collate, make_batches
from .cache import SequenceCache
from .errors import EmptyTextError, ModelError, TextTooLongError, UnsupportedOperationError
from .interrupt import check_abandoned
from .kind import Kind
from .prefix import share_groups
from .types import Backend, CompareResult, CompareStats, Item, ModelSpec, Prepared, RunOutput, RuntimeOptions


def check_text(text: Any, what: str, max_chars: int) -> None:
    if not isinstance(text, str):
        raise ModelError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise EmptyTextError(f"{what} is empty")
    if len(text) > max_chars:
        raise TextTooLongError(f"{what} has {len(text)} characters; the limit (max_chars) is {max_chars}")


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
        ran = todo  # rows computed now (not from the cache)
        lengths = [len(seqs[i]) for i in todo]
        n_batches = padded = 0
        if self.options.share_prefixes and types is None and getattr(self.backend, "shares_prefixes", False):
            groups, whole = share_groups([seqs[i] for i in todo])
            for group in groups:
                rows = todo[np.asarray(group.rows, dtype=np.int64)]
                b, p, values = self._run_group(seqs, rows, group.prefix)
                n_batches, padded = n_batches + b, padded + p
                if out is None:
                    out = np.empty((len(seqs), *values.shape[1:]), dtype=np.float32)
                out[rows] = values
            todo = todo[np.asarray(whole, dtype=np.int64)]
            lengths = [len(seqs[i]) for i in todo]
        batches = make_batches(lengths, self.options.max_tokens_per_batch, self.options.max_batch_size)
        for local in batches:
            check_abandoned()
            rows = todo[local]
            feeds = collate(seqs, types, rows, self.spec.pad_token_id, self.backend.inputs)
            padded += feeds["input_ids"].size
            values = np.asarray(self.backend.run(feeds), dtype=np.float32)
            if out is None:
                out = np.empty((len(seqs), *values.shape[1:]), dtype=np.float32)
            out[rows] = values
        n_batches += len(batches)
        if out is None:
            raise ModelError("the model produced no output")
        if cache is not None and len(ran):
            cache.put_many([keys[i] for i in ran], out[ran])
        return RunOutput(
            out, n_batches, int(sum(len(seqs[i]) for i in ran)), padded, time.perf_counter() - t0,
            len(seqs) - len(ran),
        )

    def _run_group(self, seqs: Sequence[Sequence[int]], rows: np.ndarray, prefix: int) -> tuple[int, int, np.ndarray]:
        """Run sequences ``rows`` that share their first ``prefix`` tokens: the prefix once, then the
        suffixes in length-sorted batches (each suffix token attends to ``prefix`` more keys)."""
        check_abandoned()
        state = self.backend.prefix_state(seqs[rows[0]][:prefix])
        suffixes = [seqs[r][prefix:] for r in rows]
        lengths = [len(s) + prefix for s in suffixes]
        batches = make_batches(lengths, self.options.max_tokens_per_batch, self.options.max_batch_size)
        values = np.empty(len(rows), dtype=np.float32)
        padded = prefix
        for local in batches:
            check_abandoned()
            feeds = collate(suffixes, None, local, self.spec.pad_token_id, ("input_ids", "attention_mask"))
            padded += feeds["input_ids"].size
            values[local] = np.asarray(self.backend.run_suffixes(state, feeds), dtype=np.float32)
        return len(batches) + 1, padded, values

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

    def compare_sets(self, query: str, groups: Sequence[Sequence[str]]) -> tuple[list[np.ndarray], CompareStats]:
        """Setwise kinds (K-wise calls): one model call per group of passages, each answering a distribution over
        its passages in the order given (the first is label A); with the calls' stats (``tokens`` counts the
        prompts, which grow with K)."""
        prepare_sets = getattr(self._kind, "prepare_sets", None)
        if prepare_sets is None:
            raise UnsupportedOperationError(f"model kind {self.kind!r} takes pairs, not sets of passages")
        check_text(query, "query", self.options.max_chars)
        for g, group in enumerate(groups):
            for j, text in enumerate(group):
                check_text(text, f"passage {j} of group {g}", self.options.max_chars)
        t0 = time.perf_counter()
        prepared = prepare_sets([query] * len(groups), groups)
        prepared = replace(prepared, tokenize_s=time.perf_counter() - t0)
        result = self.postprocess(prepared, self.run(prepared))
        return np.split(result.p, np.cumsum(prepared.index)[:-1]), result.stats

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
