"""Retrieval evaluation: TREC run/qrels files and ranking metrics."""

from .metrics import (
    DEFAULT_MEASURES,
    average_precision,
    evaluate,
    kendall_tau,
    ndcg,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
)
from .trec import rank_docs, read_corpus, read_qrels, read_queries, read_run, run_to_rankings, write_run

__all__ = [
    "DEFAULT_MEASURES",
    "average_precision",
    "evaluate",
    "kendall_tau",
    "ndcg",
    "ndcg_at_k",
    "precision_at_k",
    "rank_docs",
    "read_corpus",
    "read_qrels",
    "read_queries",
    "read_run",
    "recall_at_k",
    "reciprocal_rank",
    "run_to_rankings",
    "write_run",
]
