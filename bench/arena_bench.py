"""Arena leaderboards: `rerank arena`'s Bradley-Terry against FastChat's code, and a convergence replay.

Part ``fastchat`` (python bench/arena_bench.py --part fastchat): a synthetic log of 50,000 battles between 20
models (Bradley-Terry strengths N(0, 1), 20% ties, half 'tie (bothbad)'); FastChat's literal code
(tests/fastchat_elo_reference.py, lm-sys/FastChat 663442ef) as shipped (scikit-learn's default L-BFGS
stopping rule) and run to convergence (tol 1e-12), against rerank.aggregation.arena: score differences,
interval differences (same rounds, same seed), the bootstrap's own resolution (the gap between neighbouring
order statistics at the 2.5% and 97.5% quantiles) and time, interleaved in one run.

Part ``convergence``: votes needed until Kendall's tau between the ratings and the true order first reaches
0.9, for 20 and 50 models: K-wise Bayesian ratings (K = 4) with matchmaking and with random groups, and
online Elo (FastChat's compute_elo, K = 4) and Bradley-Terry on random pairwise battles; every vote is a
Plackett-Luce ranking of the shown models under true strengths N(0, 1) (pairwise: Bradley-Terry). Mean over
seeds; a run that does not reach 0.9 within the cap counts as the cap (reported).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, write_results

from rerank.aggregation.arena import Posterior, bt_ratings, next_group
from rerank.aggregation.arena.bt import bootstrap, percentile_interval
from rerank.aggregation.arena.elo import BASE, INIT_RATING, K_FACTOR, SCALE
from rerank.aggregation.arena.votes import Battles


def fastchat_part(n_battles: int, n_models: int, rounds: int, seed: int) -> dict:
    import fastchat_elo_reference as fastchat
    import sklearn.linear_model

    names, frame, votes = fastchat.synthetic_battles(n_battles, n_models, seed=0)
    battles = votes.implied_battles()
    shipped = sklearn.linear_model.LogisticRegression

    class Converged(shipped):
        def __init__(self, **kwargs):
            super().__init__(tol=1e-12, max_iter=10_000, **kwargs)

    def fastchat_run(cls):
        sklearn.linear_model.LogisticRegression = cls
        try:
            t0 = time.perf_counter()
            score = fastchat.compute_elo_mle_with_tie(frame)
            np.random.seed(seed)
            rows = fastchat.get_bootstrap_result(frame, fastchat.compute_elo_mle_with_tie, num_round=rounds)
            seconds = time.perf_counter() - t0
        finally:
            sklearn.linear_model.LogisticRegression = shipped
        return (np.array([score[m] for m in names]), rows[list(names)].to_numpy(), seconds)

    def ours_run():
        t0 = time.perf_counter()
        score = bt_ratings(battles)
        samples = bootstrap(battles, bt_ratings, rounds, seed)
        return score, samples, time.perf_counter() - t0

    start = machine()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.8+: penalty=None is deprecated
        runs = {"ours": [], "fastchat_shipped": [], "fastchat_converged": []}
        for rep in range(2):  # interleaved: the order rotates each rep
            order = [("ours", ours_run), ("fastchat_shipped", lambda: fastchat_run(shipped)),
                     ("fastchat_converged", lambda: fastchat_run(Converged))]
            order = order[rep % 3:] + order[:rep % 3]
            for name, fn in order:
                runs[name].append(fn())
    end = machine()
    ours_score, ours_samples, _ = runs["ours"][0]
    lo, hi = percentile_interval(ours_samples)
    result: dict = {"battles": n_battles, "models": n_models, "rounds": rounds, "seed": seed,
                    "fastchat_commit": "663442ef3177d4be34ba67f693977896546da525",
                    "sklearn": sklearn.__version__, "start": start, "end": end}
    ordered = np.sort(ours_samples, axis=0)
    k_lo, k_hi = int(0.025 * (rounds - 1)), int(0.975 * (rounds - 1))
    result["bootstrap_resolution_elo"] = {
        "lower_median_gap": float(np.median(ordered[k_lo + 1] - ordered[k_lo])),
        "upper_median_gap": float(np.median(ordered[k_hi + 1] - ordered[k_hi])),
    }
    for name in ("fastchat_shipped", "fastchat_converged"):
        score, rows, _ = runs[name][0]
        r_lo, r_hi = np.quantile(rows, 0.025, axis=0), np.quantile(rows, 0.975, axis=0)
        result[name] = {
            "max_abs_score_diff": float(np.abs(score - ours_score).max()),
            "max_abs_lower_diff": float(np.abs(r_lo - lo).max()),
            "max_abs_upper_diff": float(np.abs(r_hi - hi).max()),
            "max_abs_bootstrap_row_diff": float(np.abs(rows - ours_samples).max()),
            "seconds": [t for *_, t in runs[name]],
        }
    result["ours"] = {"seconds": [t for *_, t in runs["ours"]]}
    result["speedup_vs_shipped"] = float(np.median(np.array(result["fastchat_shipped"]["seconds"])
                                                   / np.array(result["ours"]["seconds"])))
    result["leaderboard"] = [{"model": m, "score": float(ours_score[i]), "lower": float(lo[i]),
                              "upper": float(hi[i])} for i, m in enumerate(names)]
    return result


# --- convergence replay -----------------------------------------------------------------------------------------
def plackett_luce_ranks(strength: np.ndarray, shown: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    utility = strength[shown] + rng.gumbel(size=len(shown))
    ranks = np.empty(len(shown), dtype=np.int64)
    ranks[np.argsort(-utility)] = np.arange(1, len(shown) + 1)
    return ranks


def _reached(ratings: np.ndarray, strength: np.ndarray, target: float) -> bool:
    if np.ptp(ratings) == 0:
        return False
    return float(kendalltau(ratings, strength).statistic) >= target


def replay(method: str, strength: np.ndarray, k: int, cap: int, check: int, target: float, seed: int) -> int:
    """Votes until Kendall tau first reaches ``target`` (``cap`` if never)."""
    rng = np.random.default_rng(seed)
    n = len(strength)
    post = Posterior.prior(n)
    rating = np.full(n, INIT_RATING)
    a_log: list[int] = []
    b_log: list[int] = []
    o_log: list[float] = []
    for vote in range(1, cap + 1):
        if method == "ksort-matchmaking":
            shown = next_group(post, k, rng)
        elif method == "ksort-random":
            shown = rng.choice(n, k, replace=False)
        else:
            shown = rng.choice(n, 2, replace=False)
        ranks = plackett_luce_ranks(strength, shown, rng)
        if method.startswith("ksort"):
            post.update(shown, ranks)
            current = post.mu
        elif method == "elo":
            a, b = int(shown[0]), int(shown[1])
            sa = 1.0 if ranks[0] < ranks[1] else 0.0
            ra, rb = rating[a], rating[b]
            ea = 1 / (1 + BASE ** ((rb - ra) / SCALE))
            eb = 1 / (1 + BASE ** ((ra - rb) / SCALE))
            rating[a] += K_FACTOR * (sa - ea)
            rating[b] += K_FACTOR * (1 - sa - eb)
            current = rating
        else:  # "bt": maximum likelihood refit at each check (0.1 pseudo-ties per pair keep it finite)
            a_log.append(int(shown[0]))
            b_log.append(int(shown[1]))
            o_log.append(1.0 if ranks[0] < ranks[1] else 0.0)
            current = None
        if vote % check == 0:
            if method == "bt":
                i, j = np.triu_indices(n, 1)
                battles = Battles(tuple(map(str, range(n))), np.concatenate([a_log, i]), np.concatenate([b_log, j]),
                                  np.concatenate([o_log, np.full(len(i), 0.5)]))
                current = bt_ratings(battles)
            if _reached(current, strength, target):
                return vote
    return cap


def convergence_part(sizes: list[int], seeds: int, k: int, target: float) -> dict:
    start = machine()
    out: dict = {"k": k, "target_tau": target, "seeds": seeds, "start": start, "sizes": {}}
    for n in sizes:
        cap = 400 * n
        check = max(1, n // 10)
        per: dict = {}
        for method in ("ksort-matchmaking", "ksort-random", "elo", "bt"):
            votes = []
            for s in range(seeds):
                strength = np.random.default_rng(1000 + s).normal(0.0, 1.0, n)
                votes.append(replay(method, strength, k, cap, check, target, seed=s))
            per[method] = {"votes": votes, "mean": float(np.mean(votes)), "capped": int(sum(v >= cap for v in votes)),
                           "cap": cap}
            print(n, method, per[method], flush=True)
        out["sizes"][str(n)] = per
    out["end"] = machine()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("fastchat", "convergence"), required=True)
    parser.add_argument("--battles", type=int, default=50_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", default="20,50")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    command = "python bench/arena_bench.py " + " ".join(sys.argv[1:])
    if args.part == "fastchat":
        r = fastchat_part(args.battles, args.models, args.rounds, args.seed)
        r["command"] = command
        md = [f"# rerank arena vs FastChat (`{command}`)", "",
              f"{r['battles']} synthetic battles, {r['models']} models, {r['rounds']} bootstrap rounds, "
              f"seed {r['seed']}; FastChat {r['fastchat_commit'][:8]} literal code, scikit-learn {r['sklearn']}.", "",
              "| reference | max abs score diff (Elo) | max abs lower diff | max abs upper diff | seconds (2 reps) |",
              "| --- | --- | --- | --- | --- |"]
        for name in ("fastchat_shipped", "fastchat_converged"):
            x = r[name]
            md.append(f"| {name} | {x['max_abs_score_diff']:.4f} | {x['max_abs_lower_diff']:.4f} | "
                      f"{x['max_abs_upper_diff']:.4f} | {', '.join(f'{t:.1f}' for t in x['seconds'])} |")
        md += [f"| ours | - | - | - | {', '.join(f'{t:.2f}' for t in r['ours']['seconds'])} |", "",
               f"Bootstrap resolution (median gap between neighbouring order statistics): lower "
               f"{r['bootstrap_resolution_elo']['lower_median_gap']:.3f}, upper "
               f"{r['bootstrap_resolution_elo']['upper_median_gap']:.3f} Elo points. Speed-up vs FastChat as "
               f"shipped: {r['speedup_vs_shipped']:.1f}x (median of per-rep ratios). Load average "
               f"{r['start']['loadavg']} at the start, {r['end']['loadavg']} at the end."]
        write_results(Path(args.out), "arena_fastchat", r, md)
    else:
        r = convergence_part([int(x) for x in args.sizes.split(",")], args.seeds, args.k, 0.9)
        r["command"] = command
        md = [f"# Votes to Kendall tau 0.9 (`{command}`)", "",
              "| models | " + " | ".join(r["sizes"][next(iter(r["sizes"]))]) + " |",
              "| --- |" + " --- |" * 4]
        for n, per in r["sizes"].items():
            md.append(f"| {n} | " + " | ".join(f"{v['mean']:.0f}" + (f" ({v['capped']} capped at {v['cap']})"
                                                                    if v["capped"] else "") for v in per.values())
                      + " |")
        md += ["", f"K = {r['k']} for the K-wise methods; mean over {r['seeds']} seeds. Load average "
               f"{r['start']['loadavg']} at the start, {r['end']['loadavg']} at the end."]
        write_results(Path(args.out), "arena_convergence", r, md)


if __name__ == "__main__":
    main()
