"""Shared half of the mono (pointwise) kinds: each candidate scored once, p(a, b) = sigmoid((s_a - s_b) / T).

A mono model gives one relevance score s per (query, passage) sequence (a classifier's logit, monoT5's
log-odds of "true"). A call's items are keyed by (query, passage), so all pairs of k candidates cost k
sequences; the model's sequence cache keeps the scores, so later sampling rounds of the same request
score nothing again. p is consistent by construction (p(a, b) = 1 - p(b, a)); with T = 1 and the log-odds
score of a calibrated classifier it is the Bradley-Terry reading of two independent relevance
probabilities.

Formulas and sources: docs/references.md#pointwise-kinds-and-the-bi-encoder-comparator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from .errors import ModelError
from .kind import sigmoid
from .types import Item, Prepared

DEFAULT_MONO_TEMPERATURE = 1.0


def check_temperature(value: float) -> float:
    value = float(value)
    if not value > 0:
        raise ModelError(f"temperature must be > 0, got {value}")
    return value


class MonoScoring:
    """Mixin for kinds whose graph scores one (query, passage) sequence: ``encode_candidates`` builds the
    sequences, this class maps items onto them and turns two scores into p."""

    reuses_sequences: ClassVar[bool] = True
    pointwise: ClassVar[bool] = True

    def encode_candidates(
        self, keys: Sequence[tuple[str, str]]
    ) -> tuple[list[list[int]], list[list[int]] | None, np.ndarray]:
        raise NotImplementedError

    def prepare(self, items: Sequence[Item]) -> Prepared:
        slots: dict[tuple[str, str], int] = {}
        index = np.empty((len(items), 2), dtype=np.int64)
        for i, (q, a, b) in enumerate(items):
            index[i, 0] = slots.setdefault((q, a), len(slots))
            index[i, 1] = slots.setdefault((q, b), len(slots))
        ids, types, truncated = self.encode_candidates(list(slots))
        cut = truncated[index].any(axis=1) if len(items) else np.zeros(0, dtype=bool)
        return Prepared(len(items), ids, types, index, int(truncated.sum()), int(cut.sum()), item_truncated=cut)

    def postprocess(self, prepared: Prepared, outputs: np.ndarray) -> np.ndarray:
        s = outputs.astype(np.float64).reshape(-1)
        idx = prepared.index
        return sigmoid((s[idx[:, 0]] - s[idx[:, 1]]) / self.temperature)  # type: ignore[attr-defined]

    def prepare_scores(self, query: str, passages: Sequence[str]) -> Prepared:
        slots: dict[tuple[str, str], int] = {}
        index = np.fromiter((slots.setdefault((query, d), len(slots)) for d in passages), dtype=np.int64)
        ids, types, truncated = self.encode_candidates(list(slots))
        return Prepared(len(passages), ids, types, index, int(truncated.sum()), int(truncated[index].sum()))

    def postprocess_scores(self, prepared: Prepared, outputs: np.ndarray) -> np.ndarray:
        return outputs.astype(np.float64).reshape(-1)[prepared.index]
