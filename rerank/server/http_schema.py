"""Request and response models of the HTTP face (pydantic), and the conversions to and from the gRPC
messages that the one servicer validates and answers.

The pairwise options are not restated here: :func:`message_model` builds them from ``rerank.v1.RankOptions``
(field names, types and the comments of ``proto/rerank/v1/rerank.proto``), so a field added to the proto
reaches the HTTP face, its validation and its OpenAPI schema without an edit. On the Cohere and TEI
shapes they ride as extra top-level JSON fields (``"sampler": "active", "fraction": 0.3``), which Cohere
clients send through ``additional_body_parameters`` and otherwise ignore.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

from ._proto import PROTO_FILE, proto_root

_UINT_MAX = {FieldDescriptor.TYPE_UINT32: 2**32 - 1, FieldDescriptor.TYPE_UINT64: 2**64 - 1}
_INT_BOUND = {FieldDescriptor.TYPE_INT32: 2**31, FieldDescriptor.TYPE_INT64: 2**63}
_SCALARS: dict[int, type] = {
    FieldDescriptor.TYPE_STRING: str,
    FieldDescriptor.TYPE_BOOL: bool,
    FieldDescriptor.TYPE_DOUBLE: float,
    FieldDescriptor.TYPE_FLOAT: float,
    **{t: int for t in (*_UINT_MAX, *_INT_BOUND)},
}


#: Request models take JSON types as they are: ``"top_n": true`` or ``"2"`` is not 1 or 2 (pydantic's strict
#: mode; an integer is still a number). Unknown fields are kept aside (``model_extra``): the HTTP face ignores
#: them with a warning, as Cohere, TEI and Infinity do, or refuses them on a server with ``strict_fields``.
STRICT = ConfigDict(extra="allow", strict=True)


# --- models generated from the proto ------------------------------------------------------------------
@functools.cache
def proto_comments() -> dict[str, str]:
    """``Message.field`` -> the comment above the field in the ``.proto`` (``{}`` when it is not found)."""
    try:
        lines = (proto_root() / PROTO_FILE).read_text(encoding="utf-8").splitlines()
    except (OSError, RuntimeError):
        return {}
    out: dict[str, str] = {}
    message, comment = "", []
    for raw in lines:
        line = raw.strip()
        if line.startswith("//"):
            comment.append(line[2:].strip())
            continue
        if m := re.match(r"message (\w+) \{", line):
            message = m.group(1)
        elif message and (m := re.match(r"(?:optional |repeated )?[\w.<>, ]+ (\w+) = \d+;", line)):
            out[f"{message}.{m.group(1)}"] = " ".join(comment)
        comment = []
    return out


def _repeated(f: FieldDescriptor) -> bool:
    flag = getattr(f, "is_repeated", None)
    return bool(flag) if flag is not None else f.label == FieldDescriptor.LABEL_REPEATED


def _is_map(f: FieldDescriptor) -> bool:
    return f.message_type is not None and f.message_type.GetOptions().map_entry


def _annotation(f: FieldDescriptor, models: dict[str, type[BaseModel]]) -> Any:
    if _is_map(f):
        return dict[str, str]
    if f.enum_type is not None:
        base: Any = Literal[tuple(v.name for v in f.enum_type.values)]
    elif f.message_type is not None:
        base = message_model(f.message_type, models)
    else:
        base = _SCALARS[f.type]
    return list[base] if _repeated(f) else base


def _constraints(f: FieldDescriptor) -> dict[str, Any]:
    if _repeated(f):
        return {}
    if f.type in _UINT_MAX:
        return {"ge": 0, "le": _UINT_MAX[f.type]}
    if f.type in _INT_BOUND:
        return {"ge": -_INT_BOUND[f.type], "le": _INT_BOUND[f.type] - 1}
    return {}


def message_model(
    descriptor: Descriptor,
    models: dict[str, type[BaseModel]] | None = None,
    *,
    exclude: tuple[str, ...] = (),
    name: str | None = None,
) -> type[BaseModel]:
    """A pydantic model of a proto message: every field optional (unset = the server's default), typed
    and bounded as the proto types are, described by the ``.proto`` comments; unknown fields kept aside."""
    models = {} if models is None else models
    key = name or descriptor.name
    if key in models:
        return models[key]
    comments = proto_comments()
    fields: dict[str, Any] = {}
    for f in descriptor.fields:
        if f.name in exclude:
            continue
        doc = comments.get(f"{descriptor.name}.{f.name}") or None
        fields[f.name] = (_annotation(f, models) | None, Field(None, description=doc, **_constraints(f)))
    model = create_model(key, __config__=STRICT, **fields)
    models[key] = model
    return model


def set_fields(model: BaseModel, names: Iterable[str]) -> dict[str, Any]:
    """The fields of ``model`` named in ``names`` that the request set (not None), as plain JSON values."""
    return model.model_dump(include=set(names), exclude_none=True)


def message_dict(msg: Any) -> dict[str, Any]:
    """A proto message as JSON values by field name: unset optional fields are null, enums by name,
    64-bit integers stay numbers (unlike the canonical proto JSON, which writes them as strings)."""
    out: dict[str, Any] = {}
    for f in msg.DESCRIPTOR.fields:
        value = getattr(msg, f.name)
        if _is_map(f):
            out[f.name] = dict(value)
        elif _repeated(f):
            out[f.name] = [message_dict(v) for v in value] if f.message_type else list(value)
        elif (f.message_type is not None or f.has_presence) and not msg.HasField(f.name):
            out[f.name] = None
        elif f.message_type is not None:
            out[f.name] = message_dict(value)
        elif f.enum_type is not None:
            out[f.name] = f.enum_type.values_by_number[value].name
        else:
            out[f.name] = value
    return out


# --- the HTTP shapes ----------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    """Every error of the HTTP face."""

    message: str = Field(description="What went wrong; starts with the field name when a field is at fault")
    field: str | None = Field(None, description="The offending request field (JSON path), if any")
    detail: str = Field(description="The message again, where Jina's clients read it")


class ModelChoice(BaseModel):
    model_config = STRICT

    model: str | None = Field(None, description="A served model (GET /v1/models); empty = the default model")
    models: list[str] | None = Field(
        None, description="Several served models, ranked independently and fused with `fusion` (extension)"
    )


class CohereFields(ModelChoice):
    query: str = Field(description="The search query")
    documents: list[str | dict[str, Any]] = Field(
        description="Texts, or objects ranked by `rank_fields` (default: their `text` field); request order "
        "is the first-stage order"
    )
    top_n: int | None = Field(None, ge=1, le=2**32 - 1, description="Return only the best top_n")
    return_documents: bool = Field(False, description="Echo each document (objects as sent) in its result")
    rank_fields: list[str] | None = Field(
        None, description="Fields of object documents to rank on, joined as `field: value` lines"
    )
    max_tokens_per_doc: int | None = Field(
        None, ge=1, description="Cut each document to its first N tokens for this request (below the model's "
        "passage budget; at or above it, the model's budget truncates)"
    )
    max_chunks_per_doc: int | None = Field(None, ge=1, description="Accepted; documents are not chunked")
    priority: int | None = Field(None, description="Accepted (Cohere scheduling hint); not used")


class TeiFields(BaseModel):
    model_config = STRICT

    query: str = Field(description="The search query")
    texts: list[str] = Field(description="Texts to rank, in first-stage order")
    raw_scores: bool = Field(
        False, description="Latent scores on the aggregator's scale (default: scores a threshold can use, "
        "comparable across requests: docs/api.md, Scores)"
    )
    return_text: bool = Field(False, description="Echo each text in its result")
    truncate: bool = Field(False, description="Cut texts over the model's max_chars instead of refusing them")
    truncation_direction: Literal["Right", "Left", "right", "left"] = Field(
        "Right", description="Which end `truncate` keeps: Right cuts the end, Left the start"
    )
    model: str | None = Field(None, description="A served model; empty = the default model (extension)")


class RetrieveFields(ModelChoice):
    query: str = Field(description="The search query")
    k: int | None = Field(None, ge=0, le=2**32 - 1, description="Documents to retrieve and re-rank (0 = 100)")
    top_n: int | None = Field(None, ge=0, le=2**32 - 1, description="Return only the best top_n (0 = all)")
    score_format: Literal["raw", "normalized"] = Field(
        "normalized", description="normalized: scores a threshold can use (the model's absolute scale, e.g. minilm's "
        "cosine); raw: the aggregator's latent scale"
    )


class CohereResult(BaseModel):
    index: int = Field(description="Position of the document in the request")
    relevance_score: float = Field(
        description="Comparable across requests: the model's absolute scale (minilm: cosine; mono: probability), "
        "else the probability of beating a typical candidate; monotone along the ranking"
    )
    document: dict[str, Any] | None = Field(None, description="With return_documents: the document")


class InfinityFields(BaseModel):
    model_config = STRICT

    query: str = Field(description="The search query")
    documents: list[str] = Field(description="Texts to rank, in first-stage order (Infinity's shape of /rerank)")
    top_n: int | None = Field(None, ge=1, le=2**32 - 1, description="Return only the best top_n")
    return_documents: bool = Field(False, description="Echo each document (a string) in its result")
    raw_scores: bool = Field(False, description="Latent scores on the aggregator's scale")
    model: str | None = Field(None, description="A served model; empty = the default model")


class InfinityResult(BaseModel):
    relevance_score: float
    index: int
    document: str | None = None


class InfinityUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class InfinityResponse(BaseModel):
    object: Literal["rerank"] = "rerank"
    results: list[InfinityResult]
    model: str
    usage: InfinityUsage
    id: str
    created: int


def rerank_shape(value: Any) -> str:
    """Which shape a ``POST /rerank`` body has: Infinity's names its texts ``documents``, TEI's ``texts``."""
    return "infinity" if isinstance(value, dict) and "documents" in value and "texts" not in value else "tei"


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None


class Schemas:
    """The models that depend on the generated proto code (options, usage, list and retrieve answers)."""

    def __init__(self, pb2: Any) -> None:
        models: dict[str, type[BaseModel]] = {}
        self.options = message_model(pb2.RankOptions.DESCRIPTOR, models)
        self.usage = message_model(pb2.Usage.DESCRIPTOR, models)
        self.model_info = models["ModelInfo"] = create_model(  # as ListModels says, plus what it serves
            "ModelInfo",
            __base__=message_model(pb2.ModelInfo.DESCRIPTOR, {}, name="ModelInfoFields"),
            endpoints=(list[str], Field(description='What the model serves here: ["rerank"]')),
        )
        self.cohere_request = create_model("CohereRerankRequest", __base__=(CohereFields, self.options))
        self.tei_request = create_model("TeiRerankRequest", __base__=(TeiFields, self.options))
        self.infinity_request = create_model("InfinityRerankRequest", __base__=(InfinityFields, self.options))
        self.rerank_body = Annotated[  # POST /rerank: TEI's or Infinity's, told apart by their fields
            Annotated[self.tei_request, Tag("tei")] | Annotated[self.infinity_request, Tag("infinity")],
            Discriminator(rerank_shape),
        ]
        self.retrieve_request = create_model("RetrieveAndRerankRequest", __base__=(RetrieveFields, self.options))
        meta = create_model(
            "CohereMeta",
            api_version=(dict[str, str], Field(description='{"version": "1"} or {"version": "2"}')),
            billed_units=(dict[str, int], Field(description='{"search_units": 1}')),
            usage=(self.usage, Field(description="Comparisons made, order inconsistency, partial, ...")),
            models=(list[str], Field(description="The models that ranked")),
            warnings=(list[str] | None, None),
        )
        self.cohere_response = create_model(
            "CohereRerankResponse",
            id=(str, Field(description="A request id (uuid4)")),
            results=(list[CohereResult], Field(description="Best first")),
            meta=(meta, ...),
            model=(str, Field(description="The model that ranked (the first, when several are fused): Jina's shape")),
            usage=(
                create_model("JinaUsage", total_tokens=(int, Field(description="Tokens the model ran for it"))),
                Field(description="Jina's usage"),
            ),
        )
        self.retrieve_response = message_model(pb2.RetrieveAndRerankResponse.DESCRIPTOR, models)
        self.models_response = message_model(pb2.ListModelsResponse.DESCRIPTOR, models)


def write_openapi(schema: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
