"""``oracle``: preferences derived from relevance judgements, for benchmarks only (not a learned model).

p(a, b) = sigmoid(scale * (g_a - g_b) + bias + noise_ab), with g the graded relevance of each passage for
the query (unjudged = 0), a first-slot ``bias`` in logits, and ``noise_ab`` ~ N(0, noise^2) drawn once
per ordered (query, a, b) from a hash: like a real model it answers the same question the same way,
and its two orders of a pair disagree as often as the noise makes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import ModelError


class OracleModel:
    """A comparator from qrels: ``grades[(query_text, passage_text)] -> relevance grade``."""

    kind = "oracle"
    provider = "oracle"

    def __init__(
        self,
        grades: Mapping[tuple[str, str], float],
        *,
        noise: float = 0.0,
        bias: float = 0.0,
        scale: float = 2.0,
        seed: int = 0,
        name: str = "oracle",
    ) -> None:
        if noise < 0 or not np.isfinite(noise):
            raise ModelError(f"oracle noise must be >= 0, got {noise}")
        self._grades = dict(grades)
        self.noise = float(noise)
        self.bias = float(bias)
        self.scale = float(scale)
        self.seed = int(seed)
        self.name = name

    def _noise(self, query: str, a: str, b: str) -> float:
        if self.noise == 0:
            return 0.0
        digest = hashlib.blake2b(f"{self.seed}\x1f{query}\x1f{a}\x1f{b}".encode(), digest_size=8).digest()
        return float(np.random.default_rng(int.from_bytes(digest, "little")).normal(0.0, self.noise))

    def compare_batch(self, items: Sequence[tuple[str, str, str]]) -> np.ndarray:
        """p per (query, a, b)."""
        out = np.empty(len(items))
        for i, (q, a, b) in enumerate(items):
            gap = self._grades.get((q, a), 0.0) - self._grades.get((q, b), 0.0)
            x = self.scale * gap + self.bias + self._noise(q, a, b)
            out[i] = 1.0 / (1.0 + np.exp(-x))
        return out

    def compare(self, query: str, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return self.compare_batch([(query, a, b) for a, b in pairs])


def oracle_from_qrels(
    qrels: Mapping[str, Mapping[str, int]],
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    **options: float,
) -> OracleModel:
    """Build an oracle for TREC files: qrels (qid -> docid -> grade), query texts, passage texts."""
    grades: dict[tuple[str, str], float] = {}
    for qid, judged in qrels.items():
        if qid not in queries:
            continue
        for docid, grade in judged.items():
            if docid in corpus:
                grades[(queries[qid], corpus[docid])] = float(max(grade, 0))
    return OracleModel(grades, **options)  # type: ignore[arg-type]
