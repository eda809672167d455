"""K-wise Bayesian ratings and matchmaking in the manner of K-Sort Arena (Li et al. 2024).

K-Sort Arena models each model's capability as a normal distribution N(mu, sigma^2), updates it in closed form
after every K-wise (free-for-all) vote, and picks the next K models by exploration-exploitation. The closed-
form K-wise update used here is Weng and Lin's Bayesian approximation for ranked free-for-all games (JMLR
2011, "Bradley-Terry full pairing", Algorithm 1): for each shown model i and each other shown model q,

    c = sqrt(sigma_i^2 + sigma_q^2 + 2 beta^2),  p_iq = 1 / (1 + exp(-(mu_i - mu_q) / c)),
    s_iq = 1 if i ranked better, 0.5 if tied, 0 if worse,
    mu_i += sigma_i^2 / c * sum_q (s_iq - p_iq),
    sigma_i^2 *= max(1 - sum_q (sigma_i / c) * sigma_i^2 / c^2 * p_iq (1 - p_iq), kappa),

in natural log-odds units (``beta = 1/sqrt(2)`` makes ``p_iq`` the Bradley-Terry probability once sigma is
small), reported on the Elo scale as ``400 / ln 10 * mu + 1000``. Matchmaking (:func:`next_group`): the model
with the widest posterior first (exploration), then the K-1 models whose comparison with it carries the most
expected information ``p (1 - p) (sigma_first^2 + sigma_j^2)`` (close in mu: exploitation; uncertain:
exploration). The paper's own update and matchmaking constants were not available to us; this module is
our reading of its method, named as such in docs/references.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .votes import Votes

#: Prior standard deviation (natural log-odds: ~350 Elo points), performance noise and variance floor.
SIGMA0, BETA, KAPPA = 2.0, 1.0 / math.sqrt(2.0), 1e-4


@dataclass
class Posterior:
    """Per-model Gaussian posteriors (natural log-odds units) and vote counts."""

    mu: np.ndarray
    sigma2: np.ndarray
    votes: np.ndarray

    @classmethod
    def prior(cls, n_models: int, sigma0: float = SIGMA0) -> Posterior:
        return cls(np.zeros(n_models), np.full(n_models, sigma0 * sigma0), np.zeros(n_models, dtype=np.int64))

    def update(self, shown: np.ndarray, ranks: np.ndarray | None, beta: float = BETA, kappa: float = KAPPA, *,
               outcome: np.ndarray | None = None) -> None:
        """One K-wise vote: ``shown`` model indexes with ``ranks`` (1 = best, equal = tie), or instead soft
        pairwise ``outcome[i, j]`` in [0, 1] (i's share of the pair, e.g. P_i / (P_i + P_j) of a model call)."""
        mu, s2 = self.mu[shown], self.sigma2[shown]
        c = np.sqrt(s2[:, None] + s2[None, :] + 2.0 * beta * beta)
        p = 1.0 / (1.0 + np.exp(-(mu[:, None] - mu[None, :]) / c))
        if outcome is not None:
            s = np.asarray(outcome, dtype=float)
        elif ranks is not None:
            s = np.where(ranks[:, None] < ranks[None, :], 1.0, np.where(ranks[:, None] > ranks[None, :], 0.0, 0.5))
        else:
            raise ValueError("give ranks or outcome")
        off = ~np.eye(len(shown), dtype=bool)
        omega = (s2[:, None] / c * (s - p) * off).sum(axis=1)
        gamma = np.sqrt(s2)[:, None] / c
        delta = (gamma * s2[:, None] / (c * c) * p * (1.0 - p) * off).sum(axis=1)
        self.mu[shown] = mu + omega
        self.sigma2[shown] = s2 * np.maximum(1.0 - delta, kappa)
        self.votes[shown] += 1


def ksort_posterior(votes: Votes, *, sigma0: float = SIGMA0, beta: float = BETA) -> Posterior:
    """The posterior after all votes in log order."""
    post = Posterior.prior(len(votes.models), sigma0)
    for v in range(len(votes)):
        shown, ranks = votes.vote(v)
        post.update(shown, ranks, beta)
    return post


def next_group(post: Posterior, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """The K models to show next: the widest posterior first, then the K-1 most informative partners for it.
    Ties (e.g. before any vote) are broken at random by ``rng`` (in index order without one)."""
    n = len(post.mu)
    if not 2 <= k <= n:
        raise ValueError(f"k must be between 2 and the number of models ({n}), got {k}")
    jitter = rng.random(n) * 1e-9 if rng is not None else np.zeros(n)
    first = int(np.argmax(post.sigma2 * (1.0 + jitter)))
    p = 1.0 / (1.0 + np.exp(-(post.mu - post.mu[first]) / np.sqrt(post.sigma2 + post.sigma2[first] + 2 * BETA**2)))
    gain = p * (1.0 - p) * (post.sigma2 + post.sigma2[first]) * (1.0 + jitter)
    gain[first] = -np.inf
    partners = np.argsort(-gain, kind="stable")[: k - 1]
    return np.concatenate([[first], partners]).astype(np.int64)
