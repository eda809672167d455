"""Bearer-token authentication as a server interceptor, and TLS credentials."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger("rerank.server")

# Health checks stay open so that load balancers and orchestrators can probe without the token.
OPEN_METHODS_PREFIXES = ("/grpc.health.v1.Health/",)


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Rejects calls without ``authorization: Bearer <token>`` metadata with UNAUTHENTICATED; each refusal
    is logged (one line, with the peer) and reported to ``on_reject(method, status)`` (the metrics)."""

    def __init__(
        self,
        token: str,
        open_prefixes: Iterable[str] = OPEN_METHODS_PREFIXES,
        on_reject: Callable[[str, grpc.StatusCode], None] | None = None,
    ) -> None:
        if not token:
            raise ValueError("the auth token must not be empty")
        self._expected = f"Bearer {token}".encode()
        self._open = tuple(open_prefixes)
        self._on_reject = on_reject

    def _authorised(self, metadata: Iterable[tuple[str, Any]] | None) -> bool:
        for key, value in metadata or ():
            if key.lower() == "authorization":
                got = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(got, self._expected)
        return False

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        method = handler_call_details.method or ""
        if method.startswith(self._open) or self._authorised(handler_call_details.invocation_metadata):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: let gRPC answer UNIMPLEMENTED

        def deny(request: Any, context: grpc.ServicerContext) -> Any:
            if self._on_reject is not None:
                self._on_reject(method, grpc.StatusCode.UNAUTHENTICATED)
            log.warning("unauthenticated call to %s from %s (missing or wrong bearer token)", method, context.peer())
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token (authorization)")

        def deny_stream(request: Any, context: grpc.ServicerContext) -> Any:
            deny(request, context)
            yield from ()

        des, ser = handler.request_deserializer, handler.response_serializer
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(deny_stream, des, ser)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(deny, des, ser)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(deny_stream, des, ser)
        return grpc.unary_unary_rpc_method_handler(deny, des, ser)


def server_credentials(cert_file: str | Path, key_file: str | Path) -> grpc.ServerCredentials:
    """TLS credentials from PEM files (certificate chain and private key)."""
    cert = Path(cert_file).read_bytes()
    key = Path(key_file).read_bytes()
    return grpc.ssl_server_credentials([(key, cert)])
