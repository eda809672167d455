"""Grouping comparison rows by unordered pair and slot order, shared by the calibration methods."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..comparisons import Comparisons, logit


@dataclass(frozen=True)
class OrderedPairStats:
    """Per unordered pair {lo, hi} (lo < hi): what the model said with lo in slot A and with hi in slot A.

    ``p_fwd`` is the weighted mean of p(lo, hi) and ``p_bwd`` of p(hi, lo); ``logit_fwd``/``logit_bwd``
    the weighted means of their log-odds. ``w_fwd``/``w_bwd`` are the model calls behind them (0 = unseen).
    """

    lo: np.ndarray
    hi: np.ndarray
    w_fwd: np.ndarray
    w_bwd: np.ndarray
    p_fwd: np.ndarray
    p_bwd: np.ndarray
    logit_fwd: np.ndarray
    logit_bwd: np.ndarray

    @property
    def both(self) -> np.ndarray:
        """Mask of the pairs seen in both orders."""
        return (self.w_fwd > 0) & (self.w_bwd > 0)


def ordered_pair_stats(comparisons: Comparisons) -> OrderedPairStats:
    """Group rows by unordered pair; sums are order-independent (rows are sorted canonically first)."""
    c = comparisons
    lo = np.minimum(c.a, c.b)
    hi = np.maximum(c.a, c.b)
    fwd = c.a < c.b
    key = lo * max(c.n_items, 1) + hi
    # Sort by (key, p) so floating-point sums do not depend on the order rows arrived in.
    sort = np.lexsort((c.p, ~fwd, key))
    key, lo, hi, fwd = key[sort], lo[sort], hi[sort], fwd[sort]
    p, w = c.p[sort], c.weight[sort]
    uniq, inverse = np.unique(key, return_inverse=True)
    m = len(uniq)
    lg = logit(p)

    def sums(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=np.where(mask, values, 0.0), minlength=m)

    w_fwd, w_bwd = sums(fwd, w), sums(~fwd, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_fwd = np.where(w_fwd > 0, sums(fwd, w * p) / np.where(w_fwd > 0, w_fwd, 1), 0.5)
        p_bwd = np.where(w_bwd > 0, sums(~fwd, w * p) / np.where(w_bwd > 0, w_bwd, 1), 0.5)
        l_fwd = np.where(w_fwd > 0, sums(fwd, w * lg) / np.where(w_fwd > 0, w_fwd, 1), 0.0)
        l_bwd = np.where(w_bwd > 0, sums(~fwd, w * lg) / np.where(w_bwd > 0, w_bwd, 1), 0.0)
    n = max(c.n_items, 1)
    return OrderedPairStats(uniq // n, uniq % n, w_fwd, w_bwd, p_fwd, p_bwd, l_fwd, l_bwd)


def rows_from_stats(n_items: int, stats: OrderedPairStats, both_p: np.ndarray, fwd_p: np.ndarray,
                    bwd_p: np.ndarray) -> Comparisons:
    """Rebuild comparisons: one row (lo, hi, both_p) per pair seen in both orders, and the one-order
    pairs as (lo, hi, fwd_p) or (hi, lo, bwd_p) rows, each weighted by the model calls behind it."""
    both = stats.both
    only_fwd = (stats.w_fwd > 0) & ~both
    only_bwd = (stats.w_bwd > 0) & ~both
    a = np.concatenate([stats.lo[both], stats.lo[only_fwd], stats.hi[only_bwd]])
    b = np.concatenate([stats.hi[both], stats.hi[only_fwd], stats.lo[only_bwd]])
    p = np.concatenate([both_p[both], fwd_p[only_fwd], bwd_p[only_bwd]])
    w = np.concatenate([(stats.w_fwd + stats.w_bwd)[both], stats.w_fwd[only_fwd], stats.w_bwd[only_bwd]])
    return Comparisons(n_items, a, b, np.clip(p, 0.0, 1.0), w)
