"""First-stage dense retrieval: a FAISS index of bi-encoder embeddings plus a SQLite document store.

Build, extend and search (Python)::

    from rerank.retrieval import Index, add_documents, build_index
    build_index("corpus.jsonl", "corpus.idx", "minilm", index_type="flat")   # embeds, writes atomically
    add_documents("corpus.idx", "more.jsonl")                               # new ids only
    with Index.open("corpus.idx") as index:                                 # the manifest's model
        hits = index.search(["query text"], k=100)[0]                       # [Hit(docid, text, score, metadata)]

Retrieve then re-rank: :func:`retrieve_and_rerank` (the gRPC ``RetrieveAndRerank`` path). Command line:
``rerank index build | add | search`` (the click group :data:`rerank.retrieval.cli.index`).
"""

from ..aggregation.lazy import lazy_exports

# Imported on first use, so that `rerank --help` (which wires in `rerank index`) loads none of it.
_EXPORTS = {
    "add_documents": "build:add_documents",
    "build_index": "build:build_index",
    "BuildReport": "build:BuildReport",
    "Corpus": "corpus:Corpus",
    "CorpusError": "errors:CorpusError",
    "CorruptIndexError": "errors:CorruptIndexError",
    "DimensionMismatchError": "errors:DimensionMismatchError",
    "DocStore": "docstore:DocStore",
    "Document": "corpus:Document",
    "DuplicateIdError": "errors:DuplicateIdError",
    "embed_texts": "embed:embed_texts",
    "gpu_count": "index:gpu_count",
    "Hit": "index:Hit",
    "Index": "index:Index",
    "INDEX_TYPES": "index:INDEX_TYPES",
    "IndexClosedError": "errors:IndexClosedError",
    "IndexManifest": "manifest:IndexManifest",
    "IndexModelMismatchError": "errors:IndexModelMismatchError",
    "is_index": "build:is_index",
    "load_embedding_model": "index:load_embedding_model",
    "ModelRef": "manifest:ModelRef",
    "NotAnIndexError": "errors:NotAnIndexError",
    "Progress": "embed:Progress",
    "read_documents": "corpus:read_documents",
    "read_query_file": "corpus:read_query_file",
    "resolve_params": "index:resolve_params",
    "RetrievalError": "errors:RetrievalError",
    "retrieve_and_rerank": "retrieve:retrieve_and_rerank",
    "RetrieveAndRerankResult": "retrieve:RetrieveAndRerankResult",
    "StoredDoc": "docstore:StoredDoc",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = list(_EXPORTS)
