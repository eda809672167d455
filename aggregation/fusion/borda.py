"""Borda fusion of several rankings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..comparisons import AggregateResult
from ._common import check_rankings


def borda_fusion(rankings: Sequence[np.ndarray], n_items: int) -> AggregateResult:
    """Borda count over rankings: the item at 0-based position r of a ranking gets ``n_items - r`` points.

    Source: Borda fusion, docs/references.md#borda-fusion (de Borda 1781; used for fusing
    the rankings of several LLM rankers by LLM-RankFusion, Zeng et al. 2024).

    Rankings are arrays of item indices, best first, and may be partial (top-m lists): points depend
    on the position only (not on the length of the list), and an item absent from a ranking gets no
    credit from it. Ties keep index order.
    """
    checked = check_rankings(rankings, n_items)
    scores = np.zeros(n_items)
    for r in checked:
        scores[r] += n_items - np.arange(len(r), dtype=np.float64)
    return AggregateResult(scores=scores)
