"""Bradley–Terry against the reference implementation ``choix`` (Lucas Maystre).

Penalty convention, read from ``choix/opt.py`` (``PairwiseFcts.objective``): choix minimises
``alpha_choix * sum(theta**2) + sum log(1 + exp(-(theta_winner - theta_loser)))``, while
:func:`bradley_terry` penalises ``alpha / 2 * ||theta||^2``; hence ``alpha_choix = alpha / 2``.
choix's ``PairwiseFcts.hessian`` is then exactly our penalised negative Hessian, which gives an
independent check of the standard errors.

Binary data ``(winner, loser)`` is the same as our rows with p in {0, 1}; a soft row (a, b, p) of weight w
is the same as ``w p`` wins of a and ``w (1 - p)`` wins of b when those are whole numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

choix = pytest.importorskip("choix")
from choix.opt import PairwiseFcts  # noqa: E402

from rerank.aggregation.aggregators import DEFAULT_ALPHA, bradley_terry  # noqa: E402
from rerank.aggregation.comparisons import Comparisons, sigmoid  # noqa: E402

#: Largest allowed difference between our (mean-centred) parameters and choix's, and between the
#: standard errors. Observed differences are <= 6e-7 (alpha = 0.01, sparse case) and come from choix:
#: its scipy Newton-CG stops with a gradient of ~2e-8 where ours is ~3e-13 (see GRAD_TOL).
CHOIX_TOL = 1e-5

#: Our optimum must be stationary for choix's own objective: max |choix gradient| at our parameters.
GRAD_TOL = 1e-8


def to_comparisons(n_items: int, data: list[tuple[int, int]]) -> Comparisons:
    """Binary (winner, loser) data as rows; half the rows are stored in the reversed order with p = 0."""
    if not data:
        return Comparisons.empty(n_items)
    a, b, p = [], [], []
    for i, (winner, loser) in enumerate(data):
        if i % 2:
            a.append(loser), b.append(winner), p.append(0.0)
        else:
            a.append(winner), b.append(loser), p.append(1.0)
    return Comparisons(n_items, np.array(a), np.array(b), np.array(p))


def choix_fit(n_items: int, data: list[tuple[int, int]], alpha: float) -> np.ndarray:
    params = choix.opt_pairwise(n_items, data, alpha=alpha / 2, method="Newton-CG", tol=1e-12)
    return params - params.mean()


def choix_stderr(n_items: int, data: list[tuple[int, int]], alpha: float, params: np.ndarray) -> np.ndarray:
    """Centred Laplace standard errors from choix's own Hessian: sqrt(diag(C H^-1 C))."""
    H = PairwiseFcts(data, alpha / 2).hessian(params)
    C = np.eye(n_items) - 1.0 / n_items
    return np.sqrt(np.diag(C @ np.linalg.inv(H) @ C))


def bt_data(theta: np.ndarray, m: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    n = len(theta)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    wins = rng.random(m) < sigmoid(theta[a] - theta[b])
    return [(int(x), int(y)) if w else (int(y), int(x)) for x, y, w in zip(a, b, wins, strict=True)]


CASES = {
    "dense_small": (4, [(0, 1), (0, 1), (1, 0), (1, 2), (2, 3), (3, 2), (0, 3), (2, 0), (1, 3), (0, 2)]),
    # components {0, 1, 2} (with a separable pair), {3, 4}; item 5 never compared
    "sparse_disconnected": (6, [(0, 1), (0, 1), (1, 0), (1, 2), (1, 2), (3, 4)]),
    "separable_chain": (5, [(i, j) for i in range(5) for j in range(i + 1, 5)]),
    "random_larger": (40, bt_data(np.linspace(-2.0, 2.0, 40), 800, seed=1)),
    "random_sparse": (60, bt_data(np.random.default_rng(7).normal(size=60), 90, seed=2)),
}


@pytest.mark.parametrize("alpha", [DEFAULT_ALPHA, 1.0, 0.01])
@pytest.mark.parametrize("case", list(CASES))
def test_bt_matches_choix(case, alpha):
    n, data = CASES[case]
    expected = choix_fit(n, data, alpha)
    result = bradley_terry(to_comparisons(n, data), alpha=alpha)
    np.testing.assert_allclose(result.scores, expected, rtol=0, atol=CHOIX_TOL)
    np.testing.assert_allclose(result.stderr, choix_stderr(n, data, alpha, expected), rtol=0, atol=CHOIX_TOL)
    assert np.abs(PairwiseFcts(data, alpha / 2).gradient(result.scores)).max() < GRAD_TOL


def test_bt_soft_and_weighted_rows_match_choix():
    # (0, 1, 0.75) with weight 4 = three wins of 0 and one of 1; (2, 1, 0.5) with weight 2 = one win each;
    # (2, 0, 1.0) twice as separate rows = two wins of 2
    soft = Comparisons(
        3,
        np.array([0, 2, 2, 2]),
        np.array([1, 1, 0, 0]),
        np.array([0.75, 0.5, 1.0, 1.0]),
        np.array([4.0, 2.0, 1.0, 1.0]),
    )
    data = [(0, 1), (0, 1), (0, 1), (1, 0), (2, 1), (1, 2), (2, 0), (2, 0)]
    expected = choix_fit(3, data, DEFAULT_ALPHA)
    np.testing.assert_allclose(bradley_terry(soft).scores, expected, rtol=0, atol=CHOIX_TOL)


def test_bt_no_comparisons_matches_choix():
    expected = choix_fit(4, [], DEFAULT_ALPHA)
    result = bradley_terry(Comparisons.empty(4))
    np.testing.assert_allclose(result.scores, expected, rtol=0, atol=CHOIX_TOL)
    np.testing.assert_allclose(result.stderr, np.sqrt((1 - 1 / 4) / DEFAULT_ALPHA), rtol=0, atol=CHOIX_TOL)
