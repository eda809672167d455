"""Model and stage specs as the CLI, the benchmarks and the Ray workers give them (``minilm:variant=int8``,
``oracle:noise=1``, ``MODEL:DEPTH``), and the comparators they load. Not part of the request path: the
server loads its models once, by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .pipeline import Comparator
from .request import RequestError


@dataclass(frozen=True)
class TrecData:
    """What an oracle needs to answer from judgements: qrels, query texts and passage texts."""

    qrels: dict[str, dict[str, int]]
    queries: dict[str, str]
    corpus: dict[str, str]


def parse_stage(text: str) -> tuple[str, int]:
    """``MODEL:DEPTH`` (the depth after the last colon: ``oracle:noise=3,bias=1:20``)."""
    spec, colon, depth = text.rpartition(":")
    if not colon or not spec:
        raise RequestError("stage", f"{text!r}: expected MODEL:DEPTH (e.g. minilm:100)")
    try:
        value = int(depth)
    except ValueError:
        raise RequestError("stage", f"{text!r}: the depth after the last ':' must be an integer") from None
    return spec, value


def parse_model_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``name`` or ``name:key=value,key=value`` (e.g. ``oracle:noise=1,bias=0.5``)."""
    name, _, rest = spec.partition(":")
    if not name:
        raise RequestError("model", f"empty model name in {spec!r}")
    options: dict[str, str] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise RequestError("model", f"bad option {part!r} in {spec!r}; expected key=value")
        options[key.strip()] = value.strip()
    return name, options


def load_comparator(
    spec: str, *, trec: TrecData | None = None, store: Any = None, max_batch_size: int | None = None
) -> Comparator:
    """A comparator by spec: ``oracle[:noise=..,bias=..,scale=..,seed=..]`` (needs ``trec``), or an
    embedded model name (exported into the store on first use), a store name or a model folder, with
    optional ``backend=onnx|torch``, ``variant=fp32|int8``, ``dtype=fp32|bf16`` (``minilm:variant=int8``)."""
    name, options = parse_model_spec(spec)
    if name == "oracle":
        from .models.oracle import oracle_from_qrels

        if trec is None:
            raise RequestError("model", "the oracle needs relevance judgements (TREC mode or a dataset)")
        try:
            values = {k: float(v) for k, v in options.items()}
        except ValueError:
            raise RequestError("model", f"oracle options must be numbers: {spec!r}") from None
        unknown = set(values) - {"noise", "bias", "scale", "seed"}
        if unknown:
            known = "noise, bias, scale, seed"
            raise RequestError("model", f"unknown oracle option(s) {sorted(unknown)}; known: {known}")
        if "seed" in values:
            values["seed"] = int(values["seed"])
        return oracle_from_qrels(trec.qrels, trec.queries, trec.corpus, **values)
    from .models import EMBEDDED, ModelError, ModelStore, ensure_embedded, load_model

    unknown = set(options) - {"backend", "variant", "dtype"}
    if unknown:
        known = "backend, variant, dtype"
        raise RequestError("model", f"unknown model option(s) {sorted(unknown)}; known: {known}")
    try:
        model_store = store if store is not None else ModelStore()
        if name in EMBEDDED:
            ensure_embedded(name, store=model_store)
        return load_model(name, store=model_store, max_batch_size=max_batch_size, **options)
    except ModelError as exc:
        raise RequestError("model", str(exc)) from None
