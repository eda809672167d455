"""rerank: pairwise ranking and re-ranking for retrieval."""

__version__ = "0.1.0"
