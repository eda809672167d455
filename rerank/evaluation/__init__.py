"""Retrieval evaluation: TREC run/qrels files, ranking metrics, and trec_eval measures of whole runs
(pytrec_eval, :mod:`.measures`; the ``rerank eval`` command is :mod:`.cli`)."""

from .metrics import (
    DEFAULT_MEASURES,
    evaluate,
    kendall_tau,
    ndcg,
    ndcg_at_k,
    reciprocal_rank,
)
from .trec import rank_docs, read_corpus, read_qrels, read_queries, read_run, run_to_rankings, write_run

__all__ = [
    "DEFAULT_MEASURES",
    "evaluate",
    "kendall_tau",
    "ndcg",
    "ndcg_at_k",
    "rank_docs",
    "read_corpus",
    "read_qrels",
    "read_queries",
    "read_run",
    "reciprocal_rank",
    "run_to_rankings",
    "write_run",
]
