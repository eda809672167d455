"""First-stage dense retrieval: a FAISS index of bi-encoder embeddings plus a SQLite document store.

Build, extend and search (Python)::

    from rerank.retrieval import Index, add_documents, build_index
    build_index("corpus.jsonl", "corpus.idx", "minilm", index_type="flat")   # embeds, writes atomically
    add_documents("corpus.idx", "more.jsonl")                               # new ids only
    with Index.open("corpus.idx") as index:                                 # the manifest's model
        hits = index.search(["query text"], k=100)[0]                       # [Hit(docid, text, score, metadata)]

Retrieve then re-rank: :func:`retrieve_and_rerank` (the gRPC ``RetrieveAndRerank`` path). Command line:
``rerank index build | add | search`` (:func:`rerank.retrieval.cli.add_index_parser`).
"""

from .build import BuildReport, add_documents, build_index, is_index
from .corpus import Corpus, Document, read_documents, read_query_file
from .docstore import DocStore, StoredDoc
from .embed import Progress, embed_texts
from .errors import (
    CorpusError,
    CorruptIndexError,
    DimensionMismatchError,
    DuplicateIdError,
    IndexClosedError,
    IndexModelMismatchError,
    NotAnIndexError,
    RetrievalError,
)
from .index import INDEX_TYPES, Hit, Index, gpu_count, load_embedding_model, resolve_params
from .manifest import IndexManifest, ModelRef
from .retrieve import RetrieveAndRerankResult, retrieve_and_rerank

__all__ = [
    "INDEX_TYPES",
    "BuildReport",
    "Corpus",
    "CorpusError",
    "CorruptIndexError",
    "DimensionMismatchError",
    "DocStore",
    "Document",
    "DuplicateIdError",
    "Hit",
    "Index",
    "IndexClosedError",
    "IndexManifest",
    "IndexModelMismatchError",
    "ModelRef",
    "NotAnIndexError",
    "Progress",
    "RetrievalError",
    "RetrieveAndRerankResult",
    "StoredDoc",
    "add_documents",
    "build_index",
    "embed_texts",
    "gpu_count",
    "is_index",
    "load_embedding_model",
    "read_documents",
    "read_query_file",
    "resolve_params",
    "retrieve_and_rerank",
]
