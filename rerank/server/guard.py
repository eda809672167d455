"""Requests refused before the servicer sees them: a body that is not a valid message of the method's type
(malformed protobuf, a string field that is not UTF-8) is answered INVALID_ARGUMENT with one log line and
counted in the metrics, instead of gRPC's INTERNAL with a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

log = logging.getLogger("rerank.server")

RejectHook = Callable[[str, grpc.StatusCode], None]  # (full method name, status) of a refused call


class _Malformed:
    """What the guarded deserializer returns for bytes it cannot parse."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, or anything a parser raises on bad bytes
            return _Malformed(exc)

    return parse


class MalformedRequestGuard(grpc.ServerInterceptor):
    """Wraps unary-unary handlers: unparsable request bytes -> INVALID_ARGUMENT, logged and counted."""

    def __init__(self, on_reject: RejectHook) -> None:
        self._on_reject = on_reject

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.response_streaming:
            return handler
        if handler.request_deserializer is None:
            return handler
        method = handler_call_details.method or ""
        behavior = handler.unary_unary

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, _Malformed):
                code = grpc.StatusCode.INVALID_ARGUMENT
                self._on_reject(method, code)
                log.warning("malformed request to %s from %s: %s", method, context.peer(), request.error)
                context.abort(
                    code,
                    f"malformed request: the body is not a valid {method.rsplit('/', 1)[-1]} request message "
                    "(broken protobuf, or a string field that is not UTF-8)",
                )
            return behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded, _tolerant(handler.request_deserializer), handler.response_serializer
        )
