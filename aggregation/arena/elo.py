"""Online Elo over battles in log order, as FastChat's ``compute_elo`` (``elo_analysis.py`` at commit
663442ef3177d4be34ba67f693977896546da525): every model starts at INIT_RATING, and each battle moves both
ratings by ``K * (actual - expected)`` with ``expected = 1 / (1 + BASE ** ((r_other - r_self) / SCALE))``
and a tie worth 0.5 (K = 4, SCALE = 400, BASE = 10, INIT_RATING = 1000)."""

from __future__ import annotations

import numpy as np

from .votes import Battles

K_FACTOR, SCALE, BASE, INIT_RATING = 4.0, 400.0, 10.0, 1000.0


def elo_ratings(battles: Battles, *, k: float = K_FACTOR, scale: float = SCALE, base: float = BASE,
                init: float = INIT_RATING) -> np.ndarray:
    """Ratings after the battles in order, one per model; NaN for a model with no battle here."""
    rating = [init] * len(battles.models)
    seen = np.zeros(len(battles.models), dtype=bool)
    seen[battles.a] = True
    seen[battles.b] = True
    for a, b, sa in zip(battles.a.tolist(), battles.b.tolist(), battles.outcome.tolist(), strict=True):
        ra, rb = rating[a], rating[b]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        rating[a] = ra + k * (sa - ea)
        rating[b] = rb + k * (1 - sa - eb)
    out = np.asarray(rating, dtype=float)
    out[~seen] = np.nan
    return out
