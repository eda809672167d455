"""``auto``: all pairs when the budget pays for them, else the best sparse sampler measured."""

from __future__ import annotations

import numpy as np

from ._common import check_common
from .active import active
from .all_pairs import all_pairs
from .base import SamplerRun

#: The sparse sampler ``auto`` runs below all pairs: the best at 5%, 10% and 33% of k(k-1) in
#: ``rerank bench budgets`` on DL19 (MiniLM and the noisy oracle; docs/benchmarks.md, "Defaults").
SPARSE = active


def auto(n_items: int, budget: int, *, rng: np.random.Generator, both_orders: bool | None = None,
         top_n: int = 10) -> SamplerRun:
    """``all`` when ``budget`` covers every pair (k(k-1) calls in both orders, k(k-1)/2 with
    ``both_orders=False``), otherwise :data:`SPARSE` (``active``) focused on the top ``top_n``."""
    check_common(n_items, budget, top_n)
    full = n_items * (n_items - 1) // (2 if both_orders is False else 1)
    chosen = all_pairs if budget >= full else SPARSE
    return (yield from chosen(n_items, budget, rng=rng, both_orders=both_orders, top_n=top_n))
