#!/usr/bin/env bash
# The comparison-budget figures of docs/benchmarks.md (issue 6), on TREC DL 2019 passage.
# Model preferences are cached under bench/cache/preferences: a rerun only replays (seconds to minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${RERANK_DATA:-../shared/data}/trec-dl-2019-passage
export OPENBLAS_NUM_THREADS=1
R=.venv/bin/rerank
$R bench budgets --dataset "$DATA" --model oracle:noise=1,bias=0.5 --depth 50 --repeats 3 --out bench/results/budgets/oracle-noise1
$R bench budgets --dataset "$DATA" --model oracle:noise=3,bias=1 --depth 50 --repeats 3 --out bench/results/budgets/oracle-noise3
# MiniLM is deterministic (one repeat); the active sampler refits Bradley-Terry every round of 25 pairs, so at
# k = 100 it runs on the small budgets only, in its own folder.
$R bench budgets --dataset "$DATA" --model minilm --depth 100 --repeats 1 --budgets 0.02,0.05,0.1,0.2,0.33,1.0 \
    --samplers all,random,window,skip,heapsort,quicksort,sliding,refine --out bench/results/budgets/minilm
$R bench budgets --dataset "$DATA" --model minilm --depth 100 --repeats 1 --budgets 0.02,0.05,0.1,0.2 \
    --samplers active --out bench/results/budgets/minilm-active
# The grid the defaults are measured against (issue 13; bench/defaults_bench.py): MiniLM at depth 50, seeds 0-2
# (the sampler's seed matters even for a deterministic model), the budgets the defaults are judged at.
RERANK_HOME=bench/cache $R bench budgets --dataset "$DATA" --model minilm --depth 50 --repeats 3 \
    --budgets 0.05,0.1,0.33 --out bench/results/budgets/minilm-depth50
# smollm-prp (SmolLM2-135M PRP) scores about 3-4 ordered pairs/s on this 2-core CPU: 380 pairs per query at depth
# 20, about 2-3 minutes a query (all 43 judged queries: about 1.7 hours). The cache keeps every finished query, so
# this line can be stopped and rerun (SMOLLM_QUERIES=N: the first N judged queries only); the figures in
# docs/benchmarks.md cover all 43.
RERANK_HOME=bench/cache $R bench budgets --dataset "$DATA" --model smollm-prp --depth 20 --repeats 3 \
    ${SMOLLM_QUERIES:+--max-queries "$SMOLLM_QUERIES"} --out bench/results/budgets/smollm-prp
