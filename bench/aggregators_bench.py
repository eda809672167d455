"""Aggregators side by side with the fastest published implementations, interleaved on the same data.

    .venv/bin/python bench/aggregators_bench.py --out bench/results --reps 15

- Bradley-Terry: our engine path (``aggregate(..., "bt", "symmetric")``: diagnostics, symmetric
  calibration, Newton fit and standard errors) against ``choix.ilsr_pairwise_dense`` on the win-count
  matrix (built outside its timing) with alpha 0.01; ours uses the equivalent L2 prior (alpha 0.02 in our
  convention = 0.01 in choix's, see aggregation/aggregators/bt.py). Estimates: Kendall tau of both to
  ``choix.opt_pairwise(alpha=0.01)`` (the exact penalised MLE) on the same binary outcomes.
- HodgeRank (aggregator alone, with standard errors) against the same ridge least squares solved by
  ``scipy.sparse.linalg.lsqr`` on the weighted incidence matrix (no maintained package ships HodgeRank;
  lsqr is what its paper's formulation calls for), incidence built inside its timing.
- PageRank (aggregator alone) against igraph's PRPACK (``Graph.pagerank(implementation="prpack")``) and
  networkx on the same loser-to-winner graph with self-loops; graph construction inside their timing,
  the win matrix given to them for free.
- EBC (aggregator alone) against the transitive closure by breadth-first search from every item in C
  (``scipy.sparse.csgraph.breadth_first_order``-based reachability via ``shortest_path(unweighted=True)``)
  on the binarised preferences given for free, plus the same Borda count.

k = 50, 100, 200; all ordered pairs and a 10% sample. Each rep runs every contender in turn (rotating
order); the figure is the median over reps of (contender time / our time): >= 1 means ours is at least as
fast. Every contender runs on one BLAS thread (its best on this machine); ours picks its own
(aggregation/threads.py). Bradley-Terry's contender also runs on the BLAS library's default threads (a second
row); ours always returns its standard errors (the Laplace posterior's), which choix does not compute.

    .venv/bin/python bench/aggregators_bench.py --methods bt --name bt_vs_choix --reps 31   # BT alone
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import choix
import igraph
import networkx as nx
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg
import scipy.stats
from bench_common import interleaved, machine, median_ratio, write_results

from rerank.aggregation import Comparisons
from rerank.aggregation.aggregators._common import TIE_TOL, preference, soft_tiebreak, win_matrix
from rerank.aggregation.engine import aggregate
from rerank.aggregation.registry import lookup
from rerank.aggregation.threads import small_solves

CHOIX_ALPHA = 0.01  # choix's convention (alpha * ||theta||^2); ours is alpha / 2 * ||theta||^2
KS = (50, 100, 200)
DENSITIES = (1.0, 0.1)


def instance(k: int, density: float, binary: bool, seed: int) -> Comparisons:
    """Ordered pairs (all, or a random share), outcomes from a BT model with N(0, 1.5^2) strengths."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(scale=1.5, size=k)
    a, b = np.nonzero(~np.eye(k, dtype=bool))
    keep = rng.random(len(a)) < density
    a, b = a[keep], b[keep]
    prob = 1.0 / (1.0 + np.exp(-(strength[a] - strength[b])))
    p = (rng.random(len(a)) < prob).astype(float) if binary else np.clip(prob + rng.normal(0, 0.1, len(a)), 0, 1)
    return Comparisons(k, a, b, p)


def one_thread(fn: Callable[[], object], k: int) -> Callable[[], object]:
    def run() -> object:
        with small_solves(k):
            return fn()

    return run


def tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau-b of two score vectors; scores equal to 1e-6 count as tied (both solvers' tolerance)."""
    return float(scipy.stats.kendalltau(np.round(x, 6), np.round(y, 6)).statistic)


def bt_case(c: Comparisons) -> tuple[dict, dict]:
    k = c.n_items
    W, _ = win_matrix(c)
    data = [(int(x), int(y)) if p > 0.5 else (int(y), int(x)) for x, y, p in zip(c.a, c.b, c.p, strict=True)]
    exact = choix.opt_pairwise(k, data, alpha=CHOIX_ALPHA, method="Newton-CG", tol=1e-12)
    ours = aggregate(c, "bt", "symmetric", alpha=2 * CHOIX_ALPHA)
    ilsr = choix.ilsr_pairwise_dense(W, alpha=CHOIX_ALPHA)
    quality = {"tau_ours_to_opt_pairwise": tau(ours.scores, exact), "tau_ilsr_to_opt_pairwise": tau(ilsr, exact),
               "stderr_included": ours.stderr is not None}
    return {"ours": lambda: aggregate(c, "bt", "symmetric", alpha=2 * CHOIX_ALPHA),
            "choix.ilsr_pairwise_dense": one_thread(lambda: choix.ilsr_pairwise_dense(W, alpha=CHOIX_ALPHA), k),
            "choix.ilsr_pairwise_dense, default threads": lambda: choix.ilsr_pairwise_dense(W, alpha=CHOIX_ALPHA),
            }, quality


def hodgerank_lsqr(c: Comparisons, alpha: float = 1.0, max_logit: float = 8.0) -> np.ndarray:
    m, k = len(c.p), c.n_items
    rows = np.repeat(np.arange(m), 2)
    cols = np.column_stack([c.a, c.b]).reshape(-1)
    sw = np.sqrt(c.weight)
    vals = (np.column_stack([sw, -sw])).reshape(-1)
    B = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(m, k))
    y = np.clip(np.log(np.maximum(c.p, 1e-300)) - np.log(np.maximum(1 - c.p, 1e-300)), -max_logit, max_logit)
    return scipy.sparse.linalg.lsqr(B, sw * y, damp=np.sqrt(alpha), atol=1e-10, btol=1e-10)[0]


def hodgerank_case(c: Comparisons) -> tuple[dict, dict]:
    ours = lookup("aggregator", "hodgerank")
    quality = {"tau_ours_to_lsqr": tau(ours(c).scores, hodgerank_lsqr(c)), "stderr_included": True}
    return {"ours": lambda: ours(c), "scipy lsqr": one_thread(lambda: hodgerank_lsqr(c), c.n_items)}, quality


def pagerank_edges(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    E = W.T + np.diag(W.sum(axis=1))  # E[j, i] = how much i beat j: edge j -> i; self-loop = own wins
    src, dst = np.nonzero(E)
    return np.column_stack([src, dst]), E[src, dst]


def pagerank_igraph(W: np.ndarray) -> list[float]:
    edges, weights = pagerank_edges(W)
    g = igraph.Graph(n=len(W), edges=edges.tolist(), directed=True)
    return g.pagerank(damping=0.85, weights=weights.tolist(), implementation="prpack")


def pagerank_networkx(W: np.ndarray) -> dict:
    edges, weights = pagerank_edges(W)
    g = nx.DiGraph()
    g.add_nodes_from(range(len(W)))
    g.add_weighted_edges_from((int(s), int(d), float(w)) for (s, d), w in zip(edges, weights, strict=True))
    return nx.pagerank(g, alpha=0.85, tol=1e-12, max_iter=10_000)


def pagerank_case(c: Comparisons) -> tuple[dict, dict]:
    ours = lookup("aggregator", "pagerank")
    W, _ = win_matrix(c)
    ref = np.asarray(pagerank_igraph(W))
    quality = {"max_abs_diff_to_prpack": float(np.abs(ours(c).scores - ref).max()),
               "tau_ours_to_prpack": tau(ours(c).scores, ref)}
    return {"ours": lambda: ours(c), "igraph prpack": lambda: pagerank_igraph(W),
            "networkx": lambda: pagerank_networkx(W)}, quality


def ebc_csgraph(M: np.ndarray, D: np.ndarray, seen: np.ndarray) -> np.ndarray:
    R = np.isfinite(scipy.sparse.csgraph.shortest_path(scipy.sparse.csr_matrix(M), unweighted=True))
    np.fill_diagonal(R, False)
    return R.sum(axis=1) - R.sum(axis=0) + soft_tiebreak(D, seen)


def ebc_case(c: Comparisons) -> tuple[dict, dict]:
    ours = lookup("aggregator", "ebc")
    D, seen = preference(c)
    M = seen & (D >= -TIE_TOL)
    np.fill_diagonal(M, False)
    quality = {"max_abs_diff_to_csgraph": float(np.abs(ours(c).scores - ebc_csgraph(M, D, seen)).max())}
    return {"ours": lambda: ours(c), "scipy csgraph BFS closure": lambda: ebc_csgraph(M, D, seen)}, quality


CASES = {"bt": (bt_case, True), "hodgerank": (hodgerank_case, False), "pagerank": (pagerank_case, False),
         "ebc": (ebc_case, False)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--methods", default=",".join(CASES))
    parser.add_argument("--name", default="aggregators_vs_peers", help="results file name (json and md)")
    args = parser.parse_args()
    start = machine()
    rows = []
    for method in args.methods.split(","):
        make, binary = CASES[method]
        for k in KS:
            for density in DENSITIES:
                c = instance(k, density, binary, seed=k)
                contenders, quality = make(c)
                inner = max(1, 400 // k)
                times = interleaved(contenders, args.reps, inner)
                row = {"method": method, "k": k, "density": density, "comparisons": len(c),
                       "ours_ms": 1000 * statistics.median(times["ours"]), **quality, "contenders": {}}
                for name, t in times.items():
                    if name != "ours":
                        row["contenders"][name] = {"ms": 1000 * statistics.median(t),
                                                   "speed_ratio": median_ratio(t, times["ours"])}
                rows.append(row)
                print(method, k, density, f"{row['ours_ms']:.2f} ms",
                      {n: round(v["speed_ratio"], 2) for n, v in row["contenders"].items()}, quality,
                      file=sys.stderr, flush=True)
    end = machine()
    lines = ["# Aggregators against the fastest published implementations", "",
             f"Command: `.venv/bin/python bench/aggregators_bench.py --out bench/results --reps {args.reps}"
             + (f" --methods {args.methods}" if args.methods != ",".join(CASES) else "")
             + (f" --name {args.name}" if args.name != "aggregators_vs_peers" else "") + "`. "
             "speed ratio = median over interleaved reps of (contender time / our time); >= 1: ours at least as "
             f"fast. Load average at start {start['loadavg']}, at end {end['loadavg']} (other engineers' "
             "benchmarks and tests on the same 2 cores). See the module docstring for what each side does.", "",
             "| method | k | pairs | ours ms | contender | contender ms | speed ratio | agreement |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        agree = ", ".join(f"{key} {value:.4g}" for key, value in row.items()
                          if key.startswith(("tau", "max_abs")))
        for name, v in row["contenders"].items():
            lines.append(f"| {row['method']} | {row['k']} | {row['density']:.0%} | {row['ours_ms']:.2f} | {name} | "
                         f"{v['ms']:.2f} | {v['speed_ratio']:.2f} | {agree} |")
    bt_rows = [r for r in rows if r["method"] == "bt"]
    if bt_rows:
        worst = min(v["speed_ratio"] for r in bt_rows for v in r["contenders"].values())
        tau_min = min(r["tau_ours_to_opt_pairwise"] for r in bt_rows)
        lines += ["", f"Bradley-Terry goal (>= 1x ilsr_pairwise_dense everywhere, tau >= 0.99): worst ratio "
                  f"{worst:.2f}, lowest tau {tau_min:.4f} ({'met' if worst >= 1 and tau_min >= 0.99 else 'NOT met'})."]
    write_results(args.out, args.name, {"machine": start, "end": end, "reps": args.reps, "rows": rows},
                  lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
