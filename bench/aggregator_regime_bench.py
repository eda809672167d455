"""The request defaults with another aggregator and prior weight, replayed on cached preferences (issue 27).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/aggregator_regime_bench.py DATASET MODEL AGGREGATORS \
        [PRIOR_WEIGHTS [REPEATS]]

e.g. ``trec-dl-2019-passage minilm bt,hodgerank 0 5``: ``RankOptions(budget, seed, aggregator, prior_weight)``
through the request path (``rerank.bench.budgets.replay_defaults``) at 5, 10 and 33% of k(k-1), BM25 top 50, every
judged query, seeds 0..REPEATS-1 (default 5); one line per aggregator and prior weight: nDCG@10 at the three
budgets and the seconds it took. The preference cache of ``rerank bench budgets`` must hold the model's answers.
The figures are in bench/results/defaults/aggregator_regime.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rerank.bench.budgets import cached_preferences, load_dataset, replay_defaults


def main() -> int:
    dataset, model, aggregators = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    weights = [float(x) for x in (sys.argv[4] if len(sys.argv) > 4 else "1.0").split(",")]
    repeats = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    data = load_dataset(Path("../shared/data") / dataset)

    def no_model() -> None:
        raise SystemExit(f"no cached preferences of {model} on {dataset}: run rerank bench budgets first")

    prefs = cached_preferences(data, model, 50, Path("bench/cache/preferences"), no_model, data.judged_qids,
                               quiet=True)
    for aggregator in aggregators:
        for weight in weights:
            started = time.time()
            rows = replay_defaults(prefs, data.qrels, budgets=[0.05, 0.1, 0.33], repeats=repeats,
                                   aggregator=aggregator, prior_weight=weight)
            print(dataset, model, aggregator, weight, [round(r["ndcg10_mean"], 4) for r in rows],
                  round(time.time() - started), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
