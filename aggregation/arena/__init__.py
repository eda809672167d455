"""Arena leaderboards from pairwise battles and K-wise votes: Bradley-Terry on the Elo scale with bootstrap or
sandwich intervals (as Chatbot Arena), online Elo, K-wise Bayesian ratings and matchmaking (as K-Sort Arena).

Pure estimators over typed votes (:mod:`.votes`); reading battle logs is the CLI's job (``rerank arena``).
Modules are imported on first use (:mod:`..lazy`), so listing the method names costs no scipy import.
"""

from __future__ import annotations

from ..lazy import LazyTable, lazy_exports

_EXPORTS = {
    "leaderboard": "board:leaderboard",
    "Row": "board:Row",
    "INTERVALS": "board:INTERVALS",
    "DEFAULT_ROUNDS": "board:DEFAULT_ROUNDS",
    "bt_ratings": "bt:bt_ratings",
    "sandwich_interval": "bt:sandwich_interval",
    "NoFiniteRatingsError": "bt:NoFiniteRatingsError",
    "elo_ratings": "elo:elo_ratings",
    "Posterior": "ksort:Posterior",
    "ksort_posterior": "ksort:ksort_posterior",
    "next_group": "ksort:next_group",
    "Battles": "votes:Battles",
    "Votes": "votes:Votes",
    "votes_from_lists": "votes:votes_from_lists",
}

#: Leaderboard methods by name: ``(votes, intervals, rounds, seed, level) -> (score, lower, upper)``.
ARENA_METHODS = LazyTable(__name__, {
    "bt": "board:bt_scores",
    "elo": "board:elo_scores",
    "ksort": "board:ksort_scores",
})

__getattr__ = lazy_exports(__name__, _EXPORTS)
