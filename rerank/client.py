"""Clients of the ``rerank.v1.Reranker`` gRPC service: :class:`RerankClient` (blocking) and
:class:`AsyncRerankClient` (``grpc.aio``).

Both retry a call that fails with UNAVAILABLE (server starting, restarting or draining) with exponential
backoff, always inside the call's overall deadline (``timeout`` seconds, measured from the first try), and
raise :class:`RerankError` (status code, message and the offending field) for anything else::

    from rerank.client import RerankClient
    with RerankClient("127.0.0.1:50051") as client:
        reply = client.rerank("what is a lobster roll", [("d1", "text one"), ("d2", "text two")], top_n=1)
        print(reply.results[0].id, reply.usage.comparisons)

A cascade names its stages (``stages=["minilm:100", ("duo", 20)]``; ``("duo", 20, 0.9)`` escalates only the
pairs the stage before is less than 0.9 sure of); ``reply.usage.stages`` reports each (with escalation: the pairs
the cheap judge answered, ``cheap_answered``, and the threshold).
The client builds the same :class:`rerank.request.RerankRequest` as every other face (:mod:`rerank.wire`
puts it on the wire) and imports neither the pipeline nor the engine.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import grpc

from .request import Candidate, RankOptions, RerankRequest, StageSpec, Usage
from .wire import options_message, request_message, usage_from_message

CandidateLike = Candidate | tuple[str, str] | tuple[str, str, float] | str
FIELD_METADATA = "rerank-field"
_MESSAGE_LIMIT = 64 * 1024 * 1024


def _pb() -> tuple[Any, Any]:
    from .server._proto import load

    return load()


@dataclass(frozen=True)
class RerankedCandidate:
    id: str
    index: int  # position in the request
    score: float
    stderr: float | None = None
    text: str | None = None  # with return_text


@dataclass(frozen=True)
class RerankReply:
    results: list[RerankedCandidate]
    usage: Usage
    models: list[str]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.results]


@dataclass(frozen=True)
class RetrievedDocument:
    id: str
    text: str
    score: float  # re-ranking score
    stderr: float | None
    retrieval_rank: int  # position in the first-stage order, 0 = best
    retrieval_score: float  # cosine of query and document embeddings
    metadata: dict[str, str]


@dataclass(frozen=True)
class RetrieveReply:
    results: list[RetrievedDocument]
    usage: Usage
    models: list[str]
    retrieved: int  # documents retrieved and re-ranked
    retrieval_ms: float

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.results]


@dataclass(frozen=True)
class ModelDescription:
    """One served model, as ListModels describes it (``ModelInfo``)."""

    name: str
    kind: str
    provider: str
    max_query_tokens: int
    max_passage_tokens: int
    max_chars: int
    max_batch_items: int
    is_default: bool


@dataclass(frozen=True)
class IndexDescription:
    """The server's document index, as ListModels describes it (``IndexInfo``)."""

    name: str
    index_type: str
    count: int
    dim: int
    model: str
    device: str


@dataclass(frozen=True)
class ServedModels(Sequence[ModelDescription]):
    """Everything ListModels answers: the models (default first; the object is a sequence of them), the
    most candidates one request may carry, and the server's index (None when it has none)."""

    models: tuple[ModelDescription, ...]
    max_candidates: int
    index: IndexDescription | None

    def __getitem__(self, i: Any) -> Any:
        return self.models[i]

    def __len__(self) -> int:
        return len(self.models)


class TokenOverPlaintextWarning(UserWarning):
    """A client sends its bearer token over an unencrypted channel."""


class RerankError(Exception):
    """A failed call: ``code`` (``grpc.StatusCode``), ``details`` and the request ``field`` at fault."""

    def __init__(self, code: grpc.StatusCode, details: str, field: str | None = None) -> None:
        self.code = code
        self.details = details
        self.field = field
        super().__init__(f"{code.name}: {details}")

    @classmethod
    def from_rpc(cls, exc: grpc.RpcError, trailing: Iterable[tuple[str, Any]] | None = None) -> RerankError:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        field = None
        for key, value in trailing or ():
            if key == FIELD_METADATA:
                field = value if isinstance(value, str) else bytes(value).decode()
        return cls(code, details or "", field)


StageLike = StageSpec | tuple[str, int] | tuple[str, int, float] | str


def _candidates(candidates: Sequence[CandidateLike]) -> tuple[Candidate, ...]:
    out = []
    for i, c in enumerate(candidates):
        if isinstance(c, Candidate):
            out.append(c)
        elif isinstance(c, str):
            out.append(Candidate(str(i), c))
        elif isinstance(c, (tuple, list)) and len(c) in (2, 3):
            score = float(c[2]) if len(c) == 3 and c[2] is not None else None
            out.append(Candidate(str(c[0]), str(c[1]), score))
        else:
            raise TypeError(f"candidate {i}: expected Candidate, (id, text[, score]) or text, got {c!r}")
    return tuple(out)


def _stages(stages: Sequence[StageLike] | None) -> tuple[StageSpec, ...]:
    """Cascade stages as ``StageSpec``, ``(model, depth)``, ``(model, depth, escalation_threshold)`` (selective
    escalation: the stage before answers the pairs it is sure of) or ``"MODEL:DEPTH"``."""
    out = []
    for i, st in enumerate(stages or ()):
        if isinstance(st, StageSpec):
            out.append(st)
        elif isinstance(st, str):
            model, colon, depth = st.rpartition(":")
            if not colon or not depth.isdigit():
                raise ValueError(f"stage {i}: {st!r}: expected MODEL:DEPTH (e.g. minilm:100)")
            out.append(StageSpec(model, int(depth)))
        elif isinstance(st, (tuple, list)) and len(st) in (2, 3):
            threshold = float(st[2]) if len(st) == 3 and st[2] is not None else None
            out.append(StageSpec(str(st[0]), int(st[1]), threshold))
        else:
            raise TypeError(f"stage {i}: expected StageSpec, (model, depth[, escalation_threshold]) or 'MODEL:DEPTH', "
                            f"got {st!r}")
    return tuple(out)


def rank_options(
    *,
    sampler: str = "",
    budget: int | float | None = None,
    aggregator: str = "",
    calibration: str = "",
    fusion: str = "",
    seed: int = 0,
    time_budget_ms: int | None = None,
    both_orders: bool | None = None,
    prior_weight: float | None = None,
    window: int | None = None,
    skip: int | None = None,
    sampler_top_n: int | None = None,
    rounds: int | None = None,
    set_size: int | None = None,
) -> RankOptions:
    """The request's :class:`RankOptions`. ``budget``: an int is comparisons, a float in (0, 1] a fraction of
    k(k-1). ``set_size``: candidates per call of a setwise model. ``None`` (and "" for names) leaves an option to the
    server's default; the server validates them."""
    if isinstance(budget, bool):
        raise TypeError("budget must be an int (comparisons) or a float (fraction)")
    d = RankOptions()
    return RankOptions(
        sampler=sampler or d.sampler, budget=budget, aggregator=aggregator or d.aggregator,
        calibration=calibration or d.calibration, fusion=fusion or d.fusion, seed=seed,
        time_budget_ms=float(time_budget_ms) if time_budget_ms else None, both_orders=both_orders,
        prior_weight=d.prior_weight if prior_weight is None else prior_weight, window=window, skip=skip,
        sampler_top_n=sampler_top_n, rounds=rounds, set_size=set_size,
    )


def build_rank_options(**options: Any) -> Any:
    """A ``RankOptions`` message; ``options`` as in :func:`rank_options`."""
    pb2, _ = _pb()
    return options_message(pb2, rank_options(**options))


def _model_names(models: Sequence[str] | str | None) -> list[str]:
    return [models] if isinstance(models, str) else list(models or [])


def _score_format(pb2: Any, normalize: bool) -> int:
    return pb2.SCORE_FORMAT_NORMALIZED if normalize else pb2.SCORE_FORMAT_RAW


def rerank_request_object(
    query: str,
    candidates: Sequence[CandidateLike],
    *,
    top_n: int = 0,
    models: Sequence[str] | str | None = None,
    stages: Sequence[StageLike] | None = None,
    **options: Any,
) -> RerankRequest:
    """The :class:`RerankRequest` every face builds; ``options`` as in :func:`rank_options`."""
    return RerankRequest(query, _candidates(candidates), tuple(_model_names(models)), _stages(stages),
                         rank_options(**options), top_n)


def build_rerank_request(
    query: str,
    candidates: Sequence[CandidateLike],
    *,
    return_text: bool = False,
    normalize: bool = False,
    **fields_: Any,
) -> Any:
    """A ``RerankRequest`` message; ``top_n``, ``models``, ``stages`` (a cascade: ``"MODEL:DEPTH"``,
    ``(model, depth)`` or ``StageSpec``) and the options as in :func:`rerank_request_object`."""
    pb2, _ = _pb()
    request = rerank_request_object(query, candidates, **fields_)
    return request_message(pb2, request, return_text=return_text, score_format=_score_format(pb2, normalize))


def build_retrieve_request(
    query: str,
    *,
    k: int = 0,
    top_n: int = 0,
    models: Sequence[str] | str | None = None,
    normalize: bool = False,
    **options: Any,
) -> Any:
    """A ``RetrieveAndRerankRequest`` (``k`` = 0: the server's default of 100); ``options`` as in
    :func:`build_rank_options`."""
    pb2, _ = _pb()
    return pb2.RetrieveAndRerankRequest(
        query=query,
        k=k,
        top_n=top_n,
        models=_model_names(models),
        options=build_rank_options(**options),
        score_format=_score_format(pb2, normalize),
    )


def reply_from_response(response: Any) -> RerankReply:
    results = [
        RerankedCandidate(r.id, r.index, r.score, r.stderr if r.HasField("stderr") else None, r.text or None)
        for r in response.results
    ]
    return RerankReply(results, _usage(response.usage), list(response.models))


def _usage(u: Any) -> Usage:
    return usage_from_message(u)


def retrieve_reply_from_response(response: Any) -> RetrieveReply:
    results = [
        RetrievedDocument(
            id=r.id,
            text=r.text,
            score=r.score,
            stderr=r.stderr if r.HasField("stderr") else None,
            retrieval_rank=r.retrieval_rank,
            retrieval_score=r.retrieval_score,
            metadata=dict(r.metadata),
        )
        for r in response.results
    ]
    return RetrieveReply(
        results, _usage(response.usage), list(response.models), response.retrieved, response.retrieval_ms
    )


def _from_message(cls: type, message: Any) -> Any:
    """A dataclass from the proto message fields of the same names."""
    return cls(**{f.name: getattr(message, f.name) for f in fields(cls)})


def _models_from_response(response: Any) -> ServedModels:
    return ServedModels(
        models=tuple(_from_message(ModelDescription, m) for m in response.models),
        max_candidates=response.max_candidates,
        index=_from_message(IndexDescription, response.index) if response.HasField("index") else None,
    )


def _credentials(tls: bool, root_certificates: bytes | str | Path | None) -> grpc.ChannelCredentials | None:
    if not tls and root_certificates is None:
        return None
    roots = root_certificates
    if isinstance(roots, (str, Path)):
        roots = Path(roots).read_bytes()
    return grpc.ssl_channel_credentials(root_certificates=roots)


Targets = str | Sequence[str]
SERVICE_NAME = "rerank.v1.Reranker"


def channel_target(targets: Targets) -> str:
    """One gRPC target for one or several replicas.

    A string is used as it is: ``host:port`` or any target gRPC resolves, e.g. ``dns:///rerank:50051`` (every
    address of the name; re-resolved when connections fail). Several ``host:port`` strings become one static
    ``ipv4:``/``ipv6:`` address list for gRPC's own resolver; host names in a list are looked up once, here."""
    if isinstance(targets, str):
        return targets
    if not targets:
        raise ValueError("no target address given")
    v4: list[str] = []
    v6: list[str] = []
    for target in targets:
        host, sep, port = target.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"address {target!r} is not host:port")
        host = host.strip("[]")
        for family, *_, address in socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM):
            if family == socket.AF_INET6:
                v6.append(f"[{address[0]}]:{port}")
            else:
                v4.append(f"{address[0]}:{port}")
    if v4 and v6:
        raise ValueError("addresses mix IPv4 and IPv6: give one family (gRPC's address lists hold one)")
    return f"ipv4:{','.join(dict.fromkeys(v4))}" if v4 else f"ipv6:{','.join(dict.fromkeys(v6))}"


def service_config(health_service: str | None = SERVICE_NAME, attempts: int = 5) -> dict[str, Any]:
    """gRPC service config: ``round_robin`` over every ready address, client-side health checking (an
    address whose health service says NOT_SERVING, e.g. a draining replica, gets no new calls) and gRPC's
    retry policy for UNAVAILABLE (a call that fails on a replica dying under it is retried on another)."""
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{
            "name": [{"service": SERVICE_NAME}],
            "retryPolicy": {
                "maxAttempts": attempts,  # gRPC caps this at 5
                "initialBackoff": "0.05s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }],
    }
    if health_service is not None:
        config["healthCheckConfig"] = {"serviceName": health_service}
    return config


def _channel_options(
    server_name: str | None, health_service: str | None, retries: bool = True
) -> list[tuple[str, Any]]:
    """Channel options; ``retries`` False (a client made with one attempt) turns gRPC's own retries off too,
    so such a client sees the server's first answer."""
    opts: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", _MESSAGE_LIMIT),
        ("grpc.max_send_message_length", _MESSAGE_LIMIT),
        ("grpc.service_config", json.dumps(service_config(health_service))),
        ("grpc.enable_retries", 1 if retries else 0),
    ]
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    return opts


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on UNAVAILABLE: up to ``attempts`` tries, backoff ``initial`` * ``multiplier``**n (capped at
    ``maximum``, with jitter), never past the call's deadline."""

    attempts: int = 4
    initial: float = 0.05
    multiplier: float = 2.0
    maximum: float = 2.0

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.multiplier**attempt)
        return base * (0.5 + random.random() / 2)


class _Base:
    def __init__(
        self,
        target: Targets = "127.0.0.1:50051",
        *,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | str | Path | None = None,
        server_name: str | None = None,
        timeout: float | None = 60.0,
        retry: RetryPolicy | None = None,
        health_service: str | None = SERVICE_NAME,
    ) -> None:
        self.target = channel_target(target)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._credentials = _credentials(tls, root_certificates)
        if token and self._credentials is None:
            warnings.warn(
                f"sending a bearer token to {target} over plaintext: anyone on the network path can read it; "
                "pass tls=True (and root_certificates) to encrypt the channel",
                TokenOverPlaintextWarning,
                stacklevel=3,
            )
        retries = self.retry.attempts > 1
        self._options = _channel_options(server_name, health_service, retries)
        self._plain_options = _channel_options(server_name, None, retries)
        self.pb2, self.pb2_grpc = _pb()

    def _deadline(self, timeout: float | None) -> float | None:
        t = self.timeout if timeout is None else timeout
        return None if t is None else time.monotonic() + t


class RerankClient(_Base):
    """Blocking client. ``target``: one address, a list of replica addresses or a ``dns:///name:port``
    target, balanced by gRPC's round_robin with client-side health checking on ``health_service`` (None: off)
    and gRPC's retries for UNAVAILABLE (:func:`service_config`). ``timeout`` (seconds) is the default
    deadline of every call; ``token`` is sent as ``authorization: Bearer``; ``tls``/``root_certificates``
    make the channel secure."""

    def __init__(self, target: Targets = "127.0.0.1:50051", **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        self.channel = self._open(self._options)
        self._health_channel: grpc.Channel | None = None
        self.stub = self.pb2_grpc.RerankerStub(self.channel)

    def _open(self, options: list[tuple[str, Any]]) -> grpc.Channel:
        if self._credentials is None:
            return grpc.insecure_channel(self.target, options=options)
        return grpc.secure_channel(self.target, self._credentials, options=options)

    def _call(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                response, _call = method.with_call(request, timeout=left, metadata=self._metadata)
                return response
            except grpc.RpcError as exc:
                code = exc.code()
                attempt += 1
                if code == grpc.StatusCode.UNAVAILABLE and attempt < self.retry.attempts:
                    pause = self.retry.delay(attempt - 1)
                    if deadline is None or time.monotonic() + pause < deadline:
                        time.sleep(pause)
                        continue
                trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
                raise RerankError.from_rpc(exc, trailing) from exc

    def rerank_request(self, request: Any, *, timeout: float | None = None) -> Any:
        """Send a prepared ``RerankRequest``; return the ``RerankResponse``."""
        return self._call(self.stub.Rerank, request, timeout)

    def rerank(
        self, query: str, candidates: Sequence[CandidateLike], *, timeout: float | None = None, **options: Any
    ) -> RerankReply:
        """Re-rank ``candidates`` for ``query``; ``options`` as in :func:`build_rerank_request`."""
        request = build_rerank_request(query, candidates, **options)
        return reply_from_response(self.rerank_request(request, timeout=timeout))

    def retrieve_and_rerank(
        self, query: str, *, k: int = 0, timeout: float | None = None, **options: Any
    ) -> RetrieveReply:
        """Retrieve the top ``k`` documents from the server's index and re-rank them; ``options`` as in
        :func:`build_retrieve_request`."""
        request = build_retrieve_request(query, k=k, **options)
        return retrieve_reply_from_response(self._call(self.stub.RetrieveAndRerank, request, timeout))

    def compare(
        self, items: Sequence[tuple[str, str, str]], *, model: str = "", timeout: float | None = None
    ) -> list[float]:
        """Raw p = P(a more relevant than b | query) for (query, a, b) triples."""
        pb2 = self.pb2
        request = pb2.CompareRequest(
            model=model, items=[pb2.CompareItem(query=q, a=a, b=b) for q, a, b in items]
        )
        return list(self._call(self.stub.Compare, request, timeout).p)

    def list_models(self, *, timeout: float | None = None) -> ServedModels:
        return _models_from_response(self._call(self.stub.ListModels, self.pb2.ListModelsRequest(), timeout))

    def health(self, service: str = "", *, timeout: float | None = 5.0) -> str:
        """``SERVING``, ``NOT_SERVING`` (or ``SERVICE_UNKNOWN``) from grpc.health.v1, of one replica (the next in
        round-robin order). Asked on a channel of its own without client-side health checking, which would
        hide a NOT_SERVING replica from the question itself."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        if self._health_channel is None:
            self._health_channel = self._open(self._plain_options)
        stub = health_pb2_grpc.HealthStub(self._health_channel)
        reply = stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout, metadata=self._metadata
        )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def close(self) -> None:
        self.channel.close()
        if self._health_channel is not None:
            self._health_channel.close()

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRerankClient(_Base):
    """``asyncio`` client on ``grpc.aio``; same arguments and retries as :class:`RerankClient`. Create it
    inside the running event loop."""

    def __init__(self, target: Targets = "127.0.0.1:50051", **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        if self._credentials is None:
            self.channel = grpc.aio.insecure_channel(self.target, options=self._options)
        else:
            self.channel = grpc.aio.secure_channel(self.target, self._credentials, options=self._options)
        self.stub = self.pb2_grpc.RerankerStub(self.channel)

    async def _call(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            call = method(request, timeout=left, metadata=self._metadata)
            try:
                return await call
            except grpc.aio.AioRpcError as exc:
                attempt += 1
                if exc.code() == grpc.StatusCode.UNAVAILABLE and attempt < self.retry.attempts:
                    pause = self.retry.delay(attempt - 1)
                    if deadline is None or time.monotonic() + pause < deadline:
                        await asyncio.sleep(pause)
                        continue
                raise RerankError.from_rpc(exc, exc.trailing_metadata()) from exc

    async def rerank_request(self, request: Any, *, timeout: float | None = None) -> Any:
        return await self._call(self.stub.Rerank, request, timeout)

    async def rerank(
        self, query: str, candidates: Sequence[CandidateLike], *, timeout: float | None = None, **options: Any
    ) -> RerankReply:
        request = build_rerank_request(query, candidates, **options)
        return reply_from_response(await self.rerank_request(request, timeout=timeout))

    async def retrieve_and_rerank(
        self, query: str, *, k: int = 0, timeout: float | None = None, **options: Any
    ) -> RetrieveReply:
        request = build_retrieve_request(query, k=k, **options)
        return retrieve_reply_from_response(await self._call(self.stub.RetrieveAndRerank, request, timeout))

    async def compare(
        self, items: Sequence[tuple[str, str, str]], *, model: str = "", timeout: float | None = None
    ) -> list[float]:
        pb2 = self.pb2
        request = pb2.CompareRequest(
            model=model, items=[pb2.CompareItem(query=q, a=a, b=b) for q, a, b in items]
        )
        return list((await self._call(self.stub.Compare, request, timeout)).p)

    async def list_models(self, *, timeout: float | None = None) -> ServedModels:
        response = await self._call(self.stub.ListModels, self.pb2.ListModelsRequest(), timeout)
        return _models_from_response(response)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncRerankClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
