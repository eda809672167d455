"""The HTTP face of the server: Cohere/Jina- and TEI-compatible re-ranking beside gRPC, in the same
process, over the same servicer (so the same validation, limits, pipeline and batching schedulers: HTTP
and gRPC comparisons are merged into the same model calls).

Why FastAPI on uvicorn: the OpenAPI schema comes from the request and response models themselves
(:mod:`.http_schema`, whose pairwise options are generated from the proto), request bodies are parsed and
type-checked by pydantic, which the stack already has, and uvicorn (with httptools and uvloop) is the
maintained ASGI server that FastAPI is deployed on. Starlette alone would leave the schema to be written
by hand. (No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.)

Routes: ``POST /v1/rerank`` and ``/v2/rerank`` (Cohere), ``POST /rerank`` (text-embeddings-inference),
``POST /v1/retrieve_and_rerank``, ``GET /v1/models``, ``GET /health`` (live), ``GET /ready`` (503 once a
shutdown began), ``GET /openapi.json``. Errors are ``{"message", "field"}`` with the HTTP status of the
one failure table (:mod:`.errors`); 503 and 429 carry ``Retry-After``. A blocking call runs on a thread pool;
a client that disconnects or whose ``X-Request-Timeout`` passes is answered at once (504 at the deadline)
and cancels its queued comparisons and its model call, as a gRPC cancel or deadline does; past a shutdown's
grace, requests in flight are answered 503. Read timeouts, the connection cap and the counting of refusals
are in :mod:`.http_transport`.
"""

import asyncio
import contextlib
import hmac
import json
import logging
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..request import Candidate, FieldNames, Path, RequestError, RerankRequest, path_text
from ..wire import options_from_fields, options_message
from .errors import CANCELLED, DEADLINE_EXCEEDED, INVALID_ARGUMENT, UNAVAILABLE, ServiceError, status_of
from .http_schema import ErrorBody, InfinityResponse, Schemas, TeiRank, message_dict, set_fields
from .http_transport import COUNTED_STATE, CountingMiddleware, guarded_protocol
from .service import RankCall, RerankerService, RetrieveCall

log = logging.getLogger("rerank.server")

TIMEOUT_HEADER = "x-request-timeout"  # seconds (a decimal number), like a gRPC deadline
WARNINGS_HEADER = "x-rerank-warnings"  # what a shape without meta.warnings is warned of (ignored fields)
RETRY_AFTER_S = 1  # Retry-After of 503 (shutting down: another replica answers) and 429 (overloaded)
SERVER_TIME_HEADER = "x-rerank-server-ms"
OPEN_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Bad input; `field` names it"),
        (401, "Missing or wrong bearer token"),
        (404, "Unknown route, or retrieve_and_rerank on a server without an index"),
        (413, "Over max_candidates, or the body over max_message_mb"),
        (429, "Model queue full, or too many requests at once"),
        (499, "The client went away"),
        (500, "Model or index failure"),
        (503, "Shutting down"),
        (504, "X-Request-Timeout passed before the ranking was complete"),
    )
}


def error_response(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else headers
    if status in (429, 503):
        headers = {**(headers or {}), "Retry-After": str(RETRY_AFTER_S)}
    # Jina's clients read `detail` (FastAPI's own error key): the same message
    return JSONResponse({"message": message, "field": field, "detail": message}, status_code=status, headers=headers)


class HttpCall:
    """What the servicer asks of a call's context (``time_remaining``, ``add_callback``), for HTTP: the
    deadline from ``X-Request-Timeout``; callbacks run when the client goes away or the deadline passes."""

    def __init__(self, timeout_s: float | None) -> None:
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._ended = False

    def time_remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            if self._ended:
                return False
            self._callbacks.append(callback)
            return True

    def end(self) -> None:
        """The call is over (answered, abandoned or expired): run the callbacks once."""
        with self._lock:
            callbacks, self._callbacks, self._ended = self._callbacks, [], True
        for callback in callbacks:
            callback()


def _timeout(request: Request) -> float | None:
    raw = request.headers.get(TIMEOUT_HEADER)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ServiceError(
            INVALID_ARGUMENT,
            f"X-Request-Timeout: must be a number of seconds > 0, got {raw!r}",
            "X-Request-Timeout",
        )
    return value


def http_names(documents: str, single_model: bool) -> FieldNames:
    """The HTTP shapes' names of the request's fields: candidates are ``documents`` (Cohere) or ``texts``
    (TEI) by position, the options are top-level fields, and a request that named one ``model`` hears of
    ``model``, not ``models[0]``."""

    def rename(path: Path, request: RerankRequest | None) -> str | None:
        head, rest = path[0], path[1:]
        if head == "candidates":
            return f"{documents}[{rest[0]}]" if rest else documents
        if head == "options":
            if rest == ("budget",):
                budget = request.options.budget if request is not None else None
                return "fraction" if isinstance(budget, float) else "comparisons"
            return path_text(rest)
        if head == "models" and single_model:
            return "model"
        return None

    return FieldNames("http", rename)


def check_json_body(content_type: str | None, body: bytes) -> None:
    """What pydantic cannot say well about a body, before it is parsed as a request: a body that is not
    declared JSON (told to send ``application/json``), malformed JSON (line, column and byte of the fault),
    and a string anywhere in it that is not valid Unicode (a lone surrogate, ``"\\ud800"``), by JSON path."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise RequestError(
            "content-type", f"send the body as JSON with Content-Type: application/json (got {media or 'none'!r})"
        )
    try:
        value = json.loads(body)
    except UnicodeDecodeError as exc:
        raise RequestError("body", f"is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise RequestError(
            "body", f"malformed JSON at line {exc.lineno}, column {exc.colno} (byte {exc.pos}): {exc.msg}"
        ) from None
    _check_strings(value, ())


def _check_strings(value: Any, path: Path) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RequestError(
                path_text(path) or "body", f"is not valid Unicode (a lone surrogate at character {exc.start})"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, path)
            _check_strings(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_strings(item, (*path, i))


class JsonBodyRoute(APIRoute):
    """A route whose body passes :func:`check_json_body` before FastAPI parses it (the body is read once:
    Starlette keeps it on the request)."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Any:
            if request.method == "POST":
                check_json_body(request.headers.get("content-type"), await request.body())
            return await handler(request)

        return route


def _json_path(loc: Sequence[Any]) -> str | None:
    """A pydantic error location as a JSON path of the body; a union member's tag after a list index
    (``documents[0].str``) is not a field and is left out."""
    parts: list[str | int] = []
    for p in loc:
        if (p == "body" or p in _SHAPE_TAGS) and not parts:
            continue
        if parts and isinstance(parts[-1], int) and isinstance(p, str) and (p in _TYPE_TAGS or "[" in p):
            continue
        parts.append(p)
    return path_text(tuple(parts)) or None


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})
_SHAPE_TAGS = frozenset({"tei", "infinity"})  # POST /rerank's two shapes (http_schema.rerank_shape)


class LimitsMiddleware:
    """Pure ASGI: bearer token (except :data:`OPEN_PATHS`) and the request-size limit, before any parsing."""

    def __init__(self, app: Any, token: str | None, max_bytes: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_bytes = max_bytes

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        """``Authorization: Bearer <token>`` with the scheme in any case (RFC 9110: case-insensitive), or the
        bare token (LlamaIndex's TEI postprocessor sends it without a scheme)."""
        assert self.token is not None
        value = headers.get(b"authorization", b"").strip()
        scheme, _, rest = value.partition(b" ")
        given = rest.strip() if scheme.lower() == b"bearer" else value
        return hmac.compare_digest(given, self.token)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        if self.token is not None and scope["path"] not in OPEN_PATHS and not self._authorized(headers):
            await error_response(401, "missing or invalid bearer token (authorization)")(scope, receive, send)
            return
        length = headers.get(b"content-length")
        too_large = f"request body exceeds the limit of {self.max_bytes} bytes (max_message_mb)"
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await error_response(413, too_large)(scope, receive, send)
            return
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):  # chunked: count while reading
            chunks, size, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
                if size > self.max_bytes:
                    await error_response(413, too_large)(scope, receive, send)
                    return
            body = b"".join(chunks)
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


class HttpFace:
    """The FastAPI app over one :class:`RerankerService`, served by uvicorn on its own thread."""

    def __init__(self, service: RerankerService, ready: Callable[[], bool]) -> None:
        self.service = service
        self.ready = ready
        self.config = service.config
        self.pb2 = service.pb2
        self.schemas = Schemas(self.pb2)
        self.pool = ThreadPoolExecutor(self.config.max_workers, thread_name_prefix="rerank-http")
        self.app = self._build()
        limits = LimitsMiddleware(self.app, self.config.auth_token, self.config.max_message_mb * 1024 * 1024)
        routes = frozenset(str(getattr(r, "path", "")) for r in self.app.routes) - OPEN_PATHS
        metrics = getattr(service, "metrics", None)
        self.asgi = CountingMiddleware(limits, metrics, routes, OPEN_PATHS) if metrics is not None else limits
        self._stopping: str | None = None  # why new calls are refused, once a stop began
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: set[asyncio.Future[str]] = set()  # calls in flight: settled to give up on one (loop only)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # --- app ----------------------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        s = self.schemas
        app = FastAPI(
            title="rerank HTTP API",
            version="1",
            description="Pairwise re-ranking with Cohere/Jina- and text-embeddings-inference-compatible "
            "endpoints. The same server answers gRPC (rerank.v1.Reranker). Send `Authorization: Bearer "
            "<token>` when the server has a token; `X-Request-Timeout: <seconds>` sets a deadline.",
            responses=_ERRORS,
        )
        app.router.route_class = JsonBodyRoute

        @app.exception_handler(ServiceError)
        async def on_service_error(_request: Request, exc: ServiceError) -> JSONResponse:
            return error_response(exc.status.http, exc.message, exc.field)

        @app.exception_handler(RequestError)
        async def on_request_error(_request: Request, exc: RequestError) -> JSONResponse:
            status, message, field = status_of(exc)  # what the HTTP face checks itself, before the servicer
            return error_response(status.http, message, field)

        @app.exception_handler(RequestValidationError)
        async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
            first = exc.errors()[0]
            field = _json_path(first.get("loc", ()))
            extra = first.get("type") == "extra_forbidden"
            message = "unknown field" if extra else str(first.get("msg", "invalid"))
            return error_response(400, f"{field}: {message}" if field else message, field)

        @app.exception_handler(StarletteHTTPException)
        async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
            return error_response(exc.status_code, str(exc.detail), headers=exc.headers)  # 405 keeps Allow

        def cohere(version: str) -> Callable[..., Any]:
            async def rerank_cohere(body: s.cohere_request, request: Request) -> Any:
                return await self._cohere(body, request, version)

            return rerank_cohere

        for version in ("1", "2"):
            app.post(
                f"/v{version}/rerank",
                response_model=s.cohere_response,
                summary=f"Re-rank documents (Cohere v{version} compatible)",
                operation_id=f"rerank_v{version}",
            )(cohere(version))

        @app.post(
            "/rerank",
            response_model=list[TeiRank] | InfinityResponse,
            summary="Re-rank texts (TEI compatible: `texts`; Infinity compatible: `documents`)",
        )
        async def rerank_tei(body: s.rerank_body, request: Request) -> Any:  # type: ignore[valid-type]
            if isinstance(body, s.infinity_request):
                return await self._infinity(body, request)
            return await self._tei(body, request)

        @app.post(
            "/v1/retrieve_and_rerank",
            response_model=s.retrieve_response,
            summary="Retrieve from the server's index, then re-rank (404 without an index)",
        )
        async def retrieve_and_rerank(body: s.retrieve_request, request: Request) -> Any:
            return await self._retrieve(body, request)

        @app.get("/v1/models", response_model=s.models_response, summary="The served models (and index)")
        async def list_models(request: Request) -> Any:
            response = await self._run(request, "ListModels", self.pb2.ListModelsRequest())
            out = message_dict(response)
            for model in out["models"]:
                model["endpoints"] = ["rerank"]  # declared in the schema's ModelInfo
            return JSONResponse(out)

        @app.get("/v1/models/{name}", response_model=s.model_info, summary="One served model (cohere models.get)")
        async def get_model(name: str, request: Request) -> Any:
            response = await self._run(request, "ListModels", self.pb2.ListModelsRequest())
            for model in message_dict(response)["models"]:
                if model["name"] == name:
                    return JSONResponse({**model, "endpoints": ["rerank"]})
            known = ", ".join(m.name for m in response.models)
            return error_response(404, f"name: unknown model {name!r}; served: {known}", "name")

        @app.get("/health", summary="Liveness: 200 while the process serves")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        @app.get("/ready", summary="Readiness: 503 once a shutdown began (drain), else 200")
        async def ready() -> Any:
            if self.ready():
                return {"status": "ready"}
            return error_response(503, "not ready: the server is shutting down")

        original = app.openapi

        def openapi() -> dict[str, Any]:
            schema = original()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():  # body errors are 400 (on_invalid), never FastAPI's 422
                    operation.get("responses", {}).pop("422", None)
            components = schema.setdefault("components", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.get("schemas", {}).pop(name, None)
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}, {}]  # required only when the server has a token
            return schema

        app.openapi = openapi  # type: ignore[method-assign]
        return app

    # --- calls --------------------------------------------------------------------------------------
    async def _run(self, request: Request, method: str, message: Any) -> Any:
        """Run ``method`` of the servicer on ``message`` on the thread pool, with the call's deadline and
        cancellation; a failure is a :class:`ServiceError` (named in HTTP fields by the call's names). The answer
        does not wait for the thread when the deadline passes, the client goes away or a stop's grace runs out: the
        call's ticket is cancelled (queued comparisons dropped, its model call abandoned) and its error returned."""
        if self._stopping is not None:
            raise ServiceError(UNAVAILABLE, self._stopping)
        call = HttpCall(_timeout(request))
        loop = self._loop = asyncio.get_running_loop()
        give_up: asyncio.Future[str] = loop.create_future()
        watcher = asyncio.ensure_future(_on_disconnect(request, give_up))
        timer = loop.call_later(call.time_remaining(), _settle, give_up, "") if call.deadline is not None else None
        self._waiting.add(give_up)
        setattr(request.state, COUNTED_STATE, True)  # service.execute counts it
        label = f"http {request.url.path}"
        work = loop.run_in_executor(self.pool, self.service.execute, method, message, call, label)
        try:
            await asyncio.wait((work, give_up), return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                call.end()
                work.add_done_callback(_retrieve)
                raise _given_up(give_up.result())
            response, elapsed = work.result()
        finally:
            self._waiting.discard(give_up)
            call.end()
            watcher.cancel()
            if timer is not None:
                timer.cancel()
        request.state.server_ms = elapsed * 1000.0
        return response

    def _models(self, body: Any) -> tuple[list[str], bool]:
        if body.model and body.models:
            raise RequestError("models", "give model or models, not both")
        if body.models:
            return list(body.models), False
        return ([body.model] if body.model else []), True

    def _rank_call(
        self, body: Any, texts: Sequence[str], models: list[str], names: FieldNames, top_n: int, score_format: int
    ) -> RankCall:
        """The request object of an HTTP body (documents by position as ids; the pairwise options and
        stages from their top-level fields)."""
        candidates = tuple(Candidate(str(i), text) for i, text in enumerate(texts))
        try:
            options, stages = options_from_fields(set_fields(body, self.schemas.options.model_fields))
        except RequestError as exc:
            raise names.error(exc) from None
        request = RerankRequest(body.query, candidates, tuple(models), stages, options, top_n)
        return RankCall(request, names, score_format)

    def _unknown_fields(self, body: Any) -> list[str]:
        """The body's unknown top-level fields: refused on a ``strict_fields`` server, else warnings."""
        names = sorted(body.model_extra or ())
        if names and self.config.strict_fields:
            raise RequestError(names[0], "unknown field (this server refuses unknown fields: strict_fields)")
        return [f"unknown field {name!a} ignored" for name in names]

    async def _cohere(self, body: Any, request: Request, version: str) -> JSONResponse:
        models, single = self._models(body)
        texts = [_document_text(d, i, body.rank_fields) for i, d in enumerate(body.documents)]
        texts, cut = self._token_budget(body, models, texts)
        warnings = self._unknown_fields(body) + cut
        call = self._rank_call(body, texts, models, http_names("documents", single), body.top_n or 0,
                               self.pb2.SCORE_FORMAT_NORMALIZED)
        response = await self._run(request, "RankRequest", call)
        echo = (lambda i: _as_document(body.documents[i])) if body.return_documents else None
        results = _ranked(response, "relevance_score", "document", echo)
        meta: dict[str, Any] = {
            "api_version": {"version": version},
            "billed_units": {"search_units": search_units(len(texts))},
            "usage": message_dict(response.usage),
            "models": list(response.models),
        }
        if warnings:
            meta["warnings"] = warnings
        body = {
            "id": str(uuid.uuid4()),
            "results": results,
            "meta": meta,
            "model": meta["models"][0],  # Jina's shape: the model and its token usage at the top level
            "usage": {"total_tokens": int(response.usage.tokens)},
        }
        return JSONResponse(body, headers=_timing(request))

    def _token_budget(self, body: Any, models: list[str], texts: list[str]) -> tuple[list[str], list[str]]:
        """``max_tokens_per_doc`` as Cohere honours it: below a model's passage budget, each document is cut
        to its first ``max_tokens_per_doc`` tokens of that model's tokenizer for this request only (the text
        up to the end of its last kept token); at or above it, the model's own budget truncates. Returns the
        texts to rank and the warnings."""
        out = []
        limit = body.max_tokens_per_doc
        if limit is not None:
            for name in models or [self.service.default_model]:
                served = self.service.models.get(name)
                budget = served.max_passage_tokens if served else 0
                if budget and limit < budget:
                    cut = _token_prefixes(served.model if served else None, texts, limit)
                    if cut is None:
                        raise RequestError(
                            "max_tokens_per_doc",
                            f"{limit} is below the passage budget of model {name!r} ({budget} tokens), and "
                            f"this model has no tokenizer to cut documents with; send >= {budget} or omit it",
                        )
                    texts = cut
                    out.append(f"documents cut to {limit} tokens of model {name!r} for this request")
                elif budget:
                    out.append(f"model {name!r} reads at most {budget} tokens of each document")
        if body.max_chunks_per_doc is not None:
            out.append("documents are not chunked: max_chunks_per_doc has no effect")
        return texts, out

    async def _tei(self, body: Any, request: Request) -> JSONResponse:
        warnings = self._unknown_fields(body)
        single_name = [body.model] if body.model else []
        texts = list(body.texts)
        if body.truncate:
            limit = self.service.models.get(body.model or self.service.default_model)
            chars = limit.max_chars if limit is not None else None
            if chars:
                left = body.truncation_direction.lower() == "left"
                texts = [t[-chars:] if left else t[:chars] for t in texts]
        fmt = self.pb2.SCORE_FORMAT_RAW if body.raw_scores else self.pb2.SCORE_FORMAT_NORMALIZED
        call = self._rank_call(body, texts, single_name, http_names("texts", True), 0, fmt)
        response = await self._run(request, "RankRequest", call)
        echo = (lambda i: body.texts[i]) if body.return_text else None
        return JSONResponse(_ranked(response, "score", "text", echo), headers=_timing(request, warnings))

    async def _infinity(self, body: Any, request: Request) -> JSONResponse:
        """Infinity's ``/rerank``: ``documents``, ``return_documents`` (as strings), ``raw_scores``; answered
        ``{object, results: [{relevance_score, index, document}], model, usage, id, created}``."""
        warnings = self._unknown_fields(body)
        fmt = self.pb2.SCORE_FORMAT_RAW if body.raw_scores else self.pb2.SCORE_FORMAT_NORMALIZED
        models = [body.model] if body.model else []
        call = self._rank_call(body, body.documents, models, http_names("documents", True), body.top_n or 0, fmt)
        response = await self._run(request, "RankRequest", call)
        echo = (lambda i: body.documents[i]) if body.return_documents else None
        tokens = int(response.usage.tokens)
        answer = {
            "object": "rerank",
            "results": _ranked(response, "relevance_score", "document", echo),
            "model": response.models[0],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "id": str(uuid.uuid4()),
            "created": int(time.time()),
        }
        return JSONResponse(answer, headers=_timing(request, warnings))

    async def _retrieve(self, body: Any, request: Request) -> JSONResponse:
        warnings = self._unknown_fields(body)
        pb2 = self.pb2
        models, single = self._models(body)
        fmt = pb2.SCORE_FORMAT_RAW if body.score_format == "raw" else pb2.SCORE_FORMAT_NORMALIZED
        names = http_names("documents", single)
        try:
            options, stages = options_from_fields(set_fields(body, self.schemas.options.model_fields))
        except RequestError as exc:
            raise names.error(exc) from None
        message = pb2.RetrieveAndRerankRequest(
            query=body.query, k=body.k or 0, top_n=body.top_n or 0, models=models, score_format=fmt,
            options=options_message(pb2, options, stages),
        )
        response = await self._run(request, "RetrieveAndRerank", RetrieveCall(message, names))
        return JSONResponse(message_dict(response), headers=_timing(request, warnings))

    # --- serving ------------------------------------------------------------------------------------
    def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a port) with uvicorn on a thread; return the bound port."""
        c = self.config
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {host}:{port} (HTTP): {exc.strerror}") from None
        sock.listen(2048)
        config = uvicorn.Config(
            self.asgi,
            http=guarded_protocol(c.http_header_timeout_s, c.http_body_timeout_s, c.http_max_connections),
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=c.tls_cert,
            ssl_keyfile=c.tls_key,
            timeout_keep_alive=c.http_keep_alive_s,  # type: ignore[arg-type]  (a float works)
            timeout_graceful_shutdown=max(0.5, c.grace_s),  # type: ignore[arg-type]
            backlog=2048,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="rerank-http", daemon=True)
        thread.start()
        end = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > end:
                sock.close()
                raise RuntimeError(f"the HTTP server did not start on {host}:{port}")
            time.sleep(0.01)
        self._server, self._thread = server, thread
        self.port = sock.getsockname()[1]
        return self.port

    def begin_stop(self, within_s: float) -> None:
        """Refuse new calls (503), stop listening and close idle connections; uvicorn ends when the calls in
        flight are answered, cancelling any left after ``within_s`` seconds. Returns at once."""
        self._stopping = "server shutting down; retry on another replica"
        if self._server is not None:
            self._server.config.timeout_graceful_shutdown = max(0.5, within_s)  # type: ignore[assignment]
            self._server.should_exit = True

    def abandon(self, reason: str) -> None:
        """Answer every call in flight 503 with ``reason`` now (a stop's grace ran out); thread-safe."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing waits
                loop.call_soon_threadsafe(self._settle_all, reason)

    def _settle_all(self, reason: str) -> None:
        for give_up in list(self._waiting):
            _settle(give_up, reason)

    def finish(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for uvicorn to end, drop calls not started; True when it ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        self.pool.shutdown(wait=False, cancel_futures=True)
        return self._thread is None or not self._thread.is_alive()


def _token_prefixes(model: Any, texts: list[str], tokens: int) -> list[str] | None:
    """Each text up to the end of its first ``tokens`` tokens (no special tokens) by ``model``'s tokenizer, or
    None when the model has none (a comparator that is not a ``PairwiseModel``). The tokenizer is the one
    the model truncates with (``models/textenc.py``: ``TextEncoder.fields``)."""
    encoder = getattr(getattr(model, "_kind", None), "encoder", None)
    if encoder is None or not hasattr(encoder, "fields"):
        return None
    return [f.text for f in encoder.fields(texts, tokens)]


def search_units(documents: int) -> int:
    """Cohere's billing unit: one search per query and up to 100 documents (300 documents: 3)."""
    return max(1, math.ceil(documents / 100))


def _ranked(response: Any, score: str, extra: str, echo: Callable[[int], Any] | None) -> list[dict[str, Any]]:
    """Results best first as ``{"index", <score>, <extra>?}``; ``echo(index)`` gives the extra value."""
    out = []
    for r in response.results:
        item: dict[str, Any] = {"index": r.index, score: r.score}
        if echo is not None:
            item[extra] = echo(r.index)
        out.append(item)
    return out


def _as_document(doc: str | dict[str, Any]) -> dict[str, Any]:
    return doc if isinstance(doc, dict) else {"text": doc}


def _timing(request: Request, warnings: Sequence[str] = ()) -> dict[str, str]:
    headers = {SERVER_TIME_HEADER: f"{getattr(request.state, 'server_ms', 0.0):.3f}"}
    if warnings:
        headers[WARNINGS_HEADER] = "; ".join(warnings)
    return headers


async def _on_disconnect(request: Request, give_up: "asyncio.Future[str]") -> None:
    """Give up on the call when its client goes away (the body is read by then: the next message is the end)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            _settle(give_up, "the client went away")
            return


def _settle(give_up: "asyncio.Future[str]", reason: str) -> None:
    """Give up on a call: ``""`` its deadline passed, else why (the client went away, the server stops)."""
    if not give_up.done():
        give_up.set_result(reason)


def _given_up(reason: str) -> ServiceError:
    if not reason:
        return ServiceError(DEADLINE_EXCEEDED, "deadline exceeded: X-Request-Timeout passed before the ranking "
                            "was complete")  # fmt: skip
    if reason == "the client went away":
        return ServiceError(CANCELLED, reason)
    return ServiceError(UNAVAILABLE, reason)


def _retrieve(work: "asyncio.Future[Any]") -> None:
    """Collect the outcome of a call given up on (its thread ends soon after: its ticket is cancelled)."""
    if not work.cancelled():
        work.exception()


def _document_text(doc: str | dict[str, Any], i: int, rank_fields: Sequence[str] | None) -> str:
    """The text a Cohere document is ranked on: a string as it is; an object's ``text``, or its
    ``rank_fields`` present in it as ``field: value`` lines (non-strings as JSON)."""
    if isinstance(doc, str):
        return doc
    if not rank_fields:
        text = doc.get("text")
        if not isinstance(text, str):
            raise RequestError(f"documents[{i}]", "an object needs a string `text` field, or give rank_fields")
        return text
    parts = [
        f"{name}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for name in rank_fields
        if (value := doc.get(name)) is not None
    ]
    if not parts:
        raise RequestError(f"documents[{i}]", f"has none of the rank_fields {list(rank_fields)}")
    return "\n".join(parts)


def openapi_schema() -> dict[str, Any]:
    """The HTTP face's OpenAPI schema, as ``/openapi.json`` serves it (no server or model needed)."""
    from types import SimpleNamespace

    from . import _proto
    from .config import ServerConfig

    pb2, _ = _proto.load()
    face = HttpFace(SimpleNamespace(config=ServerConfig(), pb2=pb2), ready=lambda: True)  # type: ignore[arg-type]
    face.pool.shutdown()
    return face.app.openapi()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rerank.server.http [FILE]``: write the OpenAPI schema (default docs/http-api.json)."""
    import sys

    from .http_schema import write_openapi

    args = list(sys.argv[1:] if argv is None else argv)
    path = args[0] if args else "docs/http-api.json"
    write_openapi(openapi_schema(), path)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
