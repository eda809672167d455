"""Batching of token sequences: sequences per backend call by device, length-sorted batches under a token
budget, right-padded feeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_MAX_TOKENS_PER_BATCH = 16_384
DEFAULT_MAX_BATCH_SIZE = 64


def default_batch_size(provider: str) -> int:
    """Sequences per backend call when none is set, by what runs the graph (measured in
    ``bench/models_bench.py``). On a CPU a call costs its tokens: padding is waste and one sequence's
    matrix products already keep every core busy, so ONNX Runtime runs one sequence per call (also what
    makes a dynamically quantized graph's answers independent of the batch: its activation scales are
    computed per call). The same holds for torch on a CPU: the suffixes of a shared prompt prefix
    (models/prefix.py) ran 1.2x faster one per call than 8 per call (SmolLM2 PRP, all pairs of 5 DL 2019
    passages: padding took 21% of the tokens fed). A GPU needs big batches to be busy: 64."""
    if "CUDA" in provider or provider.startswith("torch:cuda"):
        return DEFAULT_MAX_BATCH_SIZE
    return 1


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
