"""The first-stage order as a weak prior: pseudo-comparisons between first-stage neighbours.

Formulas and sources: docs/references.md#first-stage-prior.
"""

from __future__ import annotations

import numpy as np

from .comparisons import Comparisons

#: Defaults chosen on the noise simulation (bench/engine_bench.py): span 10, p 0.6, weight 1.
DEFAULT_SPAN = 10
DEFAULT_P = 0.6


def first_stage_prior(
    n_items: int, weight: float, *, span: int = DEFAULT_SPAN, p: float = DEFAULT_P
) -> Comparisons:
    """Rows (i, j, p) for first-stage positions i < j <= i + span, each of weight ``weight``.

    Sparse comparison sets leave most pairs unseen, and an aggregator alone then throws away what the
    first stage knew (items are indexed in first-stage order). Appending these rows is a prior that
    "the first stage is mildly right nearby", expressed as data, so it works with every aggregator:
    real comparisons outweigh it wherever there are enough of them. They are not model calls and are
    never counted as such. ``weight = 0`` returns no rows.
    """
    if weight < 0 or not np.isfinite(weight):
        raise ValueError(f"prior weight must be >= 0, got {weight}")
    if span < 1:
        raise ValueError(f"prior span must be >= 1, got {span}")
    if not 0.5 <= p <= 1.0:
        raise ValueError(f"prior p must lie in [0.5, 1], got {p}")
    if weight == 0 or n_items < 2:
        return Comparisons.empty(n_items)
    i, j = np.triu_indices(n_items, k=1)
    keep = j - i <= span
    a, b = i[keep], j[keep]
    return Comparisons(n_items, a, b, np.full(len(a), p), np.full(len(a), float(weight)))
