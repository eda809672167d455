"""Selective escalation: the confidence threshold above which a cheap judge may answer, with a guarantee.

Source: Jung, Brahman and Choi (ICLR 2025), "Trust or Escalate: LLM Judges with Provable Guarantees for Human
Agreement" (code: jaehunjung1/cascaded-selective-evaluation); docs/references.md#selective-escalation.
A judge answers an item only where its confidence is at least a threshold lambda; lambda is chosen on a
calibration set (items with the reference answer: qrels, or the strong judge's own answers) by fixed-sequence
testing, so that the agreement with the reference on the items the judge keeps is at least ``1 - alpha`` with
probability at least ``1 - delta`` over the draw of the calibration set. The rest escalates to the next judge.

The unit of the guarantee: the paper's binomial test treats the calibration items as independent draws from the
test distribution, which holds for pairs drawn from the very queries to be ranked (``unit="pair"``). Pairs of a
cascade come in clusters: a query's ~380 pairs share its passages and its difficulty, so on queries outside the
calibration set the binomial test certifies far too much (DL19: agreement >= 1 - alpha on the held-out queries in
45-50% of 20 splits at delta 0.1, docs/benchmarks.md). :func:`query_p_value` makes the query the unit: the
calibration queries are the independent draws (i.i.d. from the queries to come), and the test is on the pooled
disagreement over queries (a one-sided Student t test of the per-query excess ``errors - alpha * kept``, the
cluster-level version of the same hypothesis; asymptotic in the number of queries, not exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import bdtr, stdtr

#: The fixed sequence of thresholds, strictest first: confidences max(p, 1 - p) of a pairwise answer lie in
#: [0.5, 1]. The sequence is fixed before the agreement labels are seen, as fixed-sequence testing requires.
DEFAULT_THRESHOLDS = np.round(np.linspace(1.0, 0.5, 501), 6)
#: Thresholds that keep fewer calibration items are not tested (the reference code's "data for the top bin":
#: a handful of items can never certify a risk, and a failed test ends the sequence).
MIN_KEPT = 30
#: With the query as the unit, thresholds kept by fewer calibration queries are not tested either (a t test over
#: the queries cannot pass while one or two queries carry every kept item, and a failed test ends the sequence).
MIN_KEPT_QUERIES = 5


@dataclass(frozen=True)
class EscalationThreshold:
    """The calibrated threshold and the test behind it.

    ``threshold``: the cheap judge answers where its confidence is >= this; ``inf`` where no threshold passed
    the test (everything escalates). ``kept`` / ``disagreements``: calibration items at or above it and the
    ones among them that disagree with the reference; ``p_value``: the p-value of the last threshold that passed
    (1.0 when none did; with ``unit="query"`` the larger of the binomial and the query-level one); ``unit``:
    ``pair`` (binomial test) or ``query`` (the query as the unit: :func:`query_p_value`, and the binomial test
    too); ``queries``: calibration queries (0 with ``unit="pair"``)."""

    threshold: float
    alpha: float
    delta: float
    calibration_items: int
    kept: int
    disagreements: int
    p_value: float
    tested: int
    unit: str = "pair"
    queries: int = 0


def pair_confidence(p: np.ndarray) -> np.ndarray:
    """The confidence of pairwise answers p = P(a preferred to b): ``max(p, 1 - p)``, in [0.5, 1]."""
    p = np.asarray(p, dtype=np.float64)
    return np.maximum(p, 1.0 - p)


def binomial_p_value(disagreements: int, kept: int, alpha: float) -> float:
    """``P(Binomial(kept, alpha) <= disagreements)``: the p-value of H0 "the disagreement rate on the kept
    items exceeds alpha" (the exact binomial tail bound of Trust or Escalate). 1.0 when nothing is kept."""
    if kept <= 0:
        return 1.0
    return float(bdtr(disagreements, kept, alpha))  # = binom.cdf; scipy.stats would import far more


def query_p_value(disagreements: np.ndarray, kept: np.ndarray, alpha: float, new_queries: int | None = None) -> float:
    """The p-value of H0 "the pooled disagreement rate over queries exceeds alpha", with the query as the unit.

    ``disagreements[i]`` / ``kept[i]``: calibration query i's kept items and the ones that disagree (queries that
    keep nothing count, with 0 and 0). Pooled over queries the disagreement rate is ``E[errors] / E[kept]``, at
    most alpha exactly when ``E[z] <= 0`` for ``z = errors - alpha * kept``; with the queries i.i.d. draws, the
    one-sided Student t test of the mean of ``z`` (n - 1 degrees of freedom) gives ``P(T <= mean / se)``. With
    ``new_queries`` = N the bound is for the pooled disagreement of the next N queries rather than of the query
    population (a prediction bound: ``se = s * sqrt(1 / n + 1 / N)``). Assumption: calibration and new queries
    are exchangeable and the mean of z over n queries is near normal (the t test is asymptotic, not exact);
    1.0 with fewer than 2 queries or no spread in z."""
    z = np.asarray(disagreements, dtype=np.float64) - alpha * np.asarray(kept, dtype=np.float64)
    n = len(z)
    if n < 2:
        return 1.0
    spread = float(np.std(z, ddof=1))
    if spread <= 1e-12 * max(1.0, float(np.max(np.abs(z)))):  # equal z up to rounding
        return 1.0
    se = spread * np.sqrt(1.0 / n + (1.0 / new_queries if new_queries else 0.0))
    return float(stdtr(n - 1, float(np.mean(z)) / se))


def fixed_sequence_threshold(
    confidence: np.ndarray, agrees: np.ndarray, alpha: float, delta: float, *,
    thresholds: np.ndarray = DEFAULT_THRESHOLDS, min_kept: int = MIN_KEPT, queries: np.ndarray | None = None,
    new_queries: int | None = None, min_kept_queries: int = MIN_KEPT_QUERIES,
) -> EscalationThreshold:
    """Fixed-sequence testing over ``thresholds`` (strictest first), as in Trust or Escalate, Algorithm 1.

    For each lambda in order: the calibration items with ``confidence >= lambda`` are kept; with ``k`` kept of
    which ``e`` disagree with the reference (``agrees`` false), H0(lambda): "risk(lambda) > alpha" is rejected
    when ``P(Binomial(k, alpha) <= e) <= delta``. Testing stops at the first lambda not rejected; the answer is the
    last rejected (the most lenient certified) lambda. Then P(agreement on kept items >= 1 - alpha) >= 1 - delta
    over calibration sets drawn from the test distribution (exchangeable items). A lambda that keeps fewer than
    ``min_kept`` items is not tested, as in the reference code (the sequence then depends on the confidences
    only, never on the agreement labels). Where the first tested lambda fails, the answer is ``inf`` (every item
    escalates; the reference code keeps that lambda instead, which drops the guarantee).

    ``queries`` (the calibration query of each item): the query is the unit (module docstring). A lambda must
    pass both the binomial test and :func:`query_p_value` (with ``new_queries``), and lambdas kept by fewer than
    ``min_kept_queries`` queries are not tested. Then the guarantee holds over draws of the calibration queries
    for queries to come, where the items' own binomial test holds only for items exchangeable with the
    calibration items (pairs of the calibration queries themselves). Raises ``ValueError`` on mismatched lengths,
    ``alpha`` or ``delta`` outside (0, 1), or thresholds not strictest first.
    """
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
    agrees = np.asarray(agrees, dtype=bool).reshape(-1)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if len(confidence) != len(agrees):
        raise ValueError(f"{len(confidence)} confidences for {len(agrees)} agreement labels")
    query_index = None
    if queries is not None:
        if len(queries) != len(confidence):
            raise ValueError(f"{len(confidence)} confidences for {len(queries)} query labels")
        _, query_index = np.unique(np.asarray(queries), return_inverse=True)
        n_queries = int(query_index.max()) + 1 if len(query_index) else 0
    for name, value in (("alpha", alpha), ("delta", delta)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    if len(thresholds) and np.any(np.diff(thresholds) > 0):
        raise ValueError("thresholds must be given strictest (highest) first")
    unit, n_units = ("pair", 0) if query_index is None else ("query", n_queries)
    best = EscalationThreshold(float("inf"), alpha, delta, len(confidence), 0, 0, 1.0, 0, unit, n_units)
    tested = 0
    for lam in thresholds:
        keep = confidence >= lam
        kept = int(keep.sum())
        if kept < max(min_kept, 1):
            continue
        if query_index is not None:
            kept_by_query = np.bincount(query_index[keep], minlength=n_units)
            if np.count_nonzero(kept_by_query) < min_kept_queries:
                continue
        tested += 1
        errors = int(np.count_nonzero(~agrees[keep]))
        p_value = binomial_p_value(errors, kept, alpha)
        if query_index is not None:
            errors_by_query = np.bincount(query_index[keep & ~agrees], minlength=n_units)
            p_value = max(p_value, query_p_value(errors_by_query, kept_by_query, alpha, new_queries))
        if p_value > delta:
            break
        best = EscalationThreshold(float(lam), alpha, delta, len(confidence), kept, errors, p_value, tested, unit,
                                   n_units)
    return EscalationThreshold(best.threshold, alpha, delta, len(confidence), best.kept, best.disagreements,
                               best.p_value, tested, unit, n_units)
