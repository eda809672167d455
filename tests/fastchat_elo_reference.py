"""A literal re-implementation of FastChat's arena ratings, the reference of tests/test_arena.py.

Source: lm-sys/FastChat, ``fastchat/serve/monitor/elo_analysis.py`` at commit
663442ef3177d4be34ba67f693977896546da525 (2024-09-02, the last version fitting Bradley-Terry with
scikit-learn): ``compute_elo``, ``get_bootstrap_result`` (without its tqdm progress bar) and
``compute_elo_mle_with_tie`` (without its ``sample_weight`` argument, unused there), statement by statement.
Needs pandas and scikit-learn (the ``dev`` extra).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd


def compute_elo(battles, K=4, SCALE=400, BASE=10, INIT_RATING=1000):
    rating = defaultdict(lambda: INIT_RATING)

    for _rd, model_a, model_b, winner in battles[["model_a", "model_b", "winner"]].itertuples():
        ra = rating[model_a]
        rb = rating[model_b]
        ea = 1 / (1 + BASE ** ((rb - ra) / SCALE))
        eb = 1 / (1 + BASE ** ((ra - rb) / SCALE))
        if winner == "model_a":
            sa = 1
        elif winner == "model_b":
            sa = 0
        elif winner == "tie" or winner == "tie (bothbad)":
            sa = 0.5
        else:
            raise Exception(f"unexpected vote {winner}")
        rating[model_a] += K * (sa - ea)
        rating[model_b] += K * (1 - sa - eb)

    return dict(rating)


def get_bootstrap_result(battles, func_compute_elo, num_round=1000):
    rows = []
    for _i in range(num_round):
        tmp_battles = battles.sample(frac=1.0, replace=True)
        rows.append(func_compute_elo(tmp_battles))
    df = pd.DataFrame(rows)
    return df[df.median().sort_values(ascending=False).index]


def compute_elo_mle_with_tie(df, SCALE=400, BASE=10, INIT_RATING=1000):
    from sklearn.linear_model import LogisticRegression

    ptbl_a_win = pd.pivot_table(
        df[df["winner"] == "model_a"], index="model_a", columns="model_b", aggfunc="size", fill_value=0,
    )
    ptbl_tie = pd.pivot_table(
        df[df["winner"].isin(["tie", "tie (bothbad)"])], index="model_a", columns="model_b", aggfunc="size",
        fill_value=0,
    )
    ptbl_tie = ptbl_tie + ptbl_tie.T
    ptbl_b_win = pd.pivot_table(
        df[df["winner"] == "model_b"], index="model_a", columns="model_b", aggfunc="size", fill_value=0,
    )
    ptbl_win = ptbl_a_win * 2 + ptbl_b_win.T * 2 + ptbl_tie

    models = pd.Series(np.arange(len(ptbl_win.index)), index=ptbl_win.index)

    p = len(models)
    X = np.zeros([p * (p - 1) * 2, p])
    Y = np.zeros(p * (p - 1) * 2)

    cur_row = 0
    sample_weights = []
    for m_a in ptbl_win.index:
        for m_b in ptbl_win.columns:
            if m_a == m_b:
                continue
            # if nan skip
            if math.isnan(ptbl_win.loc[m_a, m_b]) or math.isnan(ptbl_win.loc[m_b, m_a]):
                continue
            X[cur_row, models[m_a]] = +math.log(BASE)
            X[cur_row, models[m_b]] = -math.log(BASE)
            Y[cur_row] = 1.0
            sample_weights.append(ptbl_win.loc[m_a, m_b])

            X[cur_row + 1, models[m_a]] = math.log(BASE)
            X[cur_row + 1, models[m_b]] = -math.log(BASE)
            Y[cur_row + 1] = 0.0
            sample_weights.append(ptbl_win.loc[m_b, m_a])
            cur_row += 2
    X = X[:cur_row]
    Y = Y[:cur_row]

    lr = LogisticRegression(fit_intercept=False, penalty=None)
    lr.fit(X, Y, sample_weight=sample_weights)
    elo_scores = SCALE * lr.coef_[0] + INIT_RATING
    if "mixtral-8x7b-instruct-v0.1" in models.index:
        elo_scores += 1114 - elo_scores[models["mixtral-8x7b-instruct-v0.1"]]
    return pd.Series(elo_scores, index=models.index).sort_values(ascending=False)


# --- not FastChat's: the synthetic battle log the test and bench/arena_bench.py run both codes on ---------------
RANKS = {"model_a": [1, 2], "model_b": [2, 1], "tie": [1, 1], "tie (bothbad)": [1, 1]}


def synthetic_battles(n_battles: int, n_models: int, seed: int):
    """Battles between random pairs under Bradley-Terry strengths N(0, 1), 20% ties (half of them 'bothbad'):
    the model names, a FastChat battles DataFrame and the same battles as rerank votes."""
    from rerank.aggregation.arena import votes_from_lists

    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 1.0, n_models)
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models
    p = 1.0 / (1.0 + np.exp(-(strength[a] - strength[b])))
    tie = rng.random(n_battles) < 0.2
    winner = np.where(tie, np.where(rng.random(n_battles) < 0.5, "tie", "tie (bothbad)"),
                      np.where(rng.random(n_battles) < p, "model_a", "model_b"))
    names = tuple(f"model-{i:02d}" for i in range(n_models))
    frame = pd.DataFrame({"model_a": [names[i] for i in a], "model_b": [names[i] for i in b], "winner": winner})
    votes = votes_from_lists(names, [[x, y] for x, y in zip(a.tolist(), b.tolist(), strict=True)],
                             [RANKS[w] for w in winner])
    return names, frame, votes
