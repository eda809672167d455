"""duoBERT's "Sum" aggregation: an item collects p only from the comparisons where it sits in the first slot.

Formulas and sources: docs/references.md#duobert-sum.
"""

from __future__ import annotations

import numpy as np

from ..comparisons import AggregateResult, Comparisons


def first_slot_sum(comparisons: Comparisons) -> AggregateResult:
    """``s_i = sum over rows with a = i of w * p`` (rows where i is the second passage add nothing).

    Source: duoBERT's SUM aggregation, s_i = sum_{j != i} p_{i,j} (Pradeep, Nogueira, Lin 2021,
    "The Expando-Mono-Duo Design Pattern", eq. "Sum"; Nogueira et al. 2019, "Multi-Stage Document Ranking
    with BERT"). With every ordered pair seen this is duoBERT's default; ``borda`` (= Sym-Sum) also counts
    the second slot. Meant for raw comparisons (calibration ``none``): a calibrated row merges both orders,
    so its "first slot" is only the lower item id. Rows are summed in a canonical order (bit-identical
    under row permutation); an item never in the first slot scores 0.
    """
    a, p, w = comparisons.a, comparisons.p, comparisons.weight
    idx = np.lexsort((w, p, a))
    scores = np.bincount(a[idx], weights=(w * p)[idx], minlength=comparisons.n_items).astype(np.float64)
    return AggregateResult(scores=scores)
