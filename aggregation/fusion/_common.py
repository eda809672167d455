"""Validation shared by the rank-fusion methods (private)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_rankings(rankings: Sequence[np.ndarray], n_items: int) -> list[np.ndarray]:
    """Return the rankings as int64 arrays; raise ``ValueError`` on out-of-range or repeated items."""
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    out = []
    for i, ranking in enumerate(rankings):
        r = np.asarray(ranking, dtype=np.int64).reshape(-1)
        if len(r) and (r.min() < 0 or r.max() >= n_items):
            raise ValueError(f"ranking {i}: item index out of range 0..{n_items - 1}")
        if len(np.unique(r)) != len(r):
            raise ValueError(f"ranking {i}: an item appears more than once")
        out.append(r)
    return out
