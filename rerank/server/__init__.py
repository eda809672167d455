"""The gRPC re-ranking service (``rerank.v1.Reranker``): a thin face over :mod:`rerank.pipeline`.

``RerankServer`` (``app``) serves models through per-model batching schedulers (``scheduler``); the
servicer (``service``) maps requests to :func:`rerank.pipeline.rerank` and errors to gRPC statuses. The
Python code of ``proto/rerank/v1/rerank.proto`` is generated when the wheel is built, or on first use in a
checkout (``_proto``). Clients live in :mod:`rerank.client`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RerankServer", "ServerConfig"]


def __getattr__(name: str) -> Any:  # lazy: importing the package does not load grpc or the models
    if name == "RerankServer":
        from .app import RerankServer

        return RerankServer
    if name == "ServerConfig":
        from .config import ServerConfig

        return ServerConfig
    raise AttributeError(name)
