"""Grouping comparison rows by unordered pair and slot order, shared by the calibration methods."""

from __future__ import annotations

import weakref
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


def _has_repeats(keys: np.ndarray, size: int) -> bool:
    """Whether any key occurs twice (then sums need a canonical row order to be order-independent)."""
    return len(keys) > 1 and int(np.bincount(keys, minlength=size).max()) > 1


#: The last comparison set grouped and its stats: the engine's diagnostics and calibration ask for the same
#: set in a row (Comparisons is immutable), so it is grouped once.
_last: tuple[weakref.ref, OrderedPairStats] | None = None


def ordered_pair_stats(comparisons: Comparisons) -> OrderedPairStats:
    """Group rows by unordered pair; sums are order-independent (rows are sorted canonically first).

    Without repeated ordered pairs every sum has one term, so no sort is needed, and when the pairs
    fill a good part of the k x k grid they are summed on it directly (the common all-pairs case).
    """
    global _last
    last = _last
    if last is not None and last[0]() is comparisons:
        return last[1]
    stats = _group(comparisons)
    _last = (weakref.ref(comparisons), stats)
    return stats


def _group(comparisons: Comparisons) -> OrderedPairStats:
    c = comparisons
    n = max(c.n_items, 1)
    lg = logit(c.p)
    ordered = c.a * n + c.b
    if not _has_repeats(ordered, n * n):
        if n * n <= 16 * len(c.p):
            return _dense_stats(n, ordered, c.p, c.weight, lg)
        sort = np.arange(len(c.p))
    else:
        # Sort by (key, p) so floating-point sums do not depend on the order rows arrived in.
        sort = np.lexsort((c.p, c.a > c.b, np.minimum(c.a, c.b) * n + np.maximum(c.a, c.b)))
    a, b, p, w, lg = c.a[sort], c.b[sort], c.p[sort], c.weight[sort], lg[sort]
    fwd = a < b
    uniq, inverse = np.unique(np.minimum(a, b) * n + np.maximum(a, b), return_inverse=True)
    m = len(uniq)

    def sums(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=np.where(mask, values, 0.0), minlength=m)

    w_fwd, w_bwd = sums(fwd, w), sums(~fwd, w)
    return _stats(uniq // n, uniq % n, w_fwd, w_bwd, sums(fwd, w * p), sums(~fwd, w * p),
                  sums(fwd, w * lg), sums(~fwd, w * lg))


def _dense_stats(n: int, ordered: np.ndarray, p: np.ndarray, w: np.ndarray, lg: np.ndarray) -> OrderedPairStats:
    """Per-pair sums on the n x n grid of ordered pairs (each cell holds at most one row)."""

    def grid(values: np.ndarray | None) -> np.ndarray:
        return np.bincount(ordered, weights=values, minlength=n * n).reshape(n, n)

    rows = grid(None)
    lo, hi = np.nonzero(np.triu(rows + rows.T > 0, 1))
    W, WP, WL = grid(w), grid(w * p), grid(w * lg)
    return _stats(lo, hi, W[lo, hi], W[hi, lo], WP[lo, hi], WP[hi, lo], WL[lo, hi], WL[hi, lo])


def _stats(lo: np.ndarray, hi: np.ndarray, w_fwd: np.ndarray, w_bwd: np.ndarray, wp_fwd: np.ndarray,
           wp_bwd: np.ndarray, wl_fwd: np.ndarray, wl_bwd: np.ndarray) -> OrderedPairStats:
    """Weighted means from weighted sums; 0.5 (p) and 0 (logit) for an order never seen."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p_fwd = np.where(w_fwd > 0, wp_fwd / np.where(w_fwd > 0, w_fwd, 1), 0.5)
        p_bwd = np.where(w_bwd > 0, wp_bwd / np.where(w_bwd > 0, w_bwd, 1), 0.5)
        l_fwd = np.where(w_fwd > 0, wl_fwd / np.where(w_fwd > 0, w_fwd, 1), 0.0)
        l_bwd = np.where(w_bwd > 0, wl_bwd / np.where(w_bwd > 0, w_bwd, 1), 0.0)
    return OrderedPairStats(lo, hi, w_fwd, w_bwd, p_fwd, p_bwd, l_fwd, l_bwd)


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
