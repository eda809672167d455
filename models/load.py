"""``load_model``: a store name, an embedded name or a folder to a ready ``PairwiseModel`` on the ONNX
Runtime or the torch backend; ``list_models``: what can be loaded by name."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .batching import default_batch_size
from .cpu_default import backend_for_load
from .embedded import EMBEDDED, embedded_source
from .errors import CorruptModelError, ModelError, UnknownModelError
from .manifest import MANIFEST_FILE, Manifest, sha256_file, sha256_weights
from .model import PairwiseModel
from .registry import kind_class
from .runtime import CUDA, OnnxBackend, TorchBackend, cuda_works, preferred_provider
from .sources import describe_source, text_encoder_from_hf
from .store import SOURCES_DIR, ModelStore, as_store
from .textenc import TextEncoder
from .types import RuntimeOptions

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "int8": "int8",  # dynamic int8 weights of every Linear (torch_modules.quantize_int8), fp32 elsewhere
    "qint8": "int8",
}


def _torch_dtype(dtype: Any):
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        name = _DTYPES[str(dtype)]
        return torch.float32 if name == "int8" else getattr(torch, name)
    except KeyError:
        raise ModelError(f"unknown dtype {dtype!r}; known: {', '.join(sorted(_DTYPES))}") from None


@dataclass(frozen=True)
class _Source:
    """What load_model resolved a name to."""

    name: str
    folder: Path
    manifest: Manifest | None  # None: a checkpoint folder (torch backend only)
    kind: str
    embedded: bool = False  # an embedded model not exported into the store yet


def _resolve(name_or_path: str | Path, store: ModelStore, kind: str | None) -> _Source:
    """A ``Path`` or a string with a path separator (or starting with '.' or '~') is a folder; any other
    string is looked up in the store, then among the embedded models, then as a folder."""
    text = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or os.sep in text or text.startswith((".", "~"))
    if not looks_like_path:
        if text in store.names():
            manifest = store.manifest(text)
            return _Source(text, store.path(text), manifest, manifest.kind)
        if text in EMBEDDED:
            # the folder is resolved by the torch loader (a GGUF model is converted only when really needed)
            return _Source(text, store.root / SOURCES_DIR / text, None, EMBEDDED[text].kind, embedded=True)
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / MANIFEST_FILE).is_file() or (path / "model.onnx").is_file():
            manifest = Manifest.read(path)
            return _Source(manifest.name, path, manifest, manifest.kind)
        if (path / "config.json").is_file():
            if kind is None:
                raise ModelError(
                    f"{path} is a checkpoint folder: pass kind= to load it with the torch backend"
                )
            return _Source(path.name, path, None, kind)
        raise CorruptModelError(
            f"{path} holds neither manifest.json (exported model) nor config.json (checkpoint)"
        )
    if looks_like_path:
        raise UnknownModelError(f"model folder {text!r} does not exist")
    known = sorted(set(store.names()) | set(EMBEDDED))
    raise UnknownModelError(
        f"unknown model {text!r}; known: {', '.join(known) or '(none)'} (store {store.root})"
    )


def _apply_overrides(spec, overrides: Mapping[str, Any]):
    budgets = {
        k: int(v) for k, v in overrides.items() if k in ("max_query_tokens", "max_passage_tokens") and v
    }
    options = {k: v for k, v in overrides.items() if k not in budgets and v is not None}
    # a budget the kind's reference rule does not take means per-field budgets (as at export)
    foreign = [b for b in budgets if b not in kind_class(spec.kind).reference_budgets]
    if foreign and "truncation" not in options and spec.options.get("truncation") == "reference":
        options["truncation"] = "fields"
    return replace(spec, **budgets, options={**spec.options, **options})


def _device_of(providers: Sequence[str] | None) -> str:
    """``cuda`` when the session will try CUDA first, else ``cpu`` (picks the default variant)."""
    if providers:
        return "cuda" if providers[0] == CUDA else "cpu"
    return "cuda" if cuda_works() else "cpu"


def _load_onnx(src: _Source, store: ModelStore, args: Mapping[str, Any]) -> PairwiseModel:
    if src.manifest is None:
        if src.embedded:
            raise UnknownModelError(
                f"embedded model {src.name!r} is not exported into {store.root} yet: run "
                f"rerank.models.ensure_embedded({src.name!r}) "
                f"(or `python -m rerank.models ensure {src.name}`)"
            )
        raise ModelError(
            f"{src.folder} is a checkpoint folder; export it first (export_model) for the onnx backend"
        )
    manifest = src.manifest
    variant_name = args.get("variant") or manifest.variant_for(_device_of(args.get("providers")))
    if variant_name not in manifest.variants:
        raise ModelError(f"{src.name} has no variant {variant_name!r}; it has {', '.join(manifest.variants)}")
    variant = manifest.variants[variant_name]
    graph = src.folder / variant.file
    if not graph.is_file():
        raise CorruptModelError(f"model graph missing: {graph}")
    if args.get("verify", True) and sha256_file(graph) != variant.sha256:
        raise CorruptModelError(f"{graph} does not match the sha256 in its manifest (damaged or replaced)")
    spec = _apply_overrides(manifest.spec, args.get("overrides", {}))
    kind = kind_class(manifest.kind)(spec, TextEncoder(src.folder))
    backend = OnnxBackend(
        graph,
        output=spec.output,
        providers=args.get("providers"),
        intra_op_threads=args.get("intra_op_threads"),
        cuda=args.get("cuda_options"),
    )
    return PairwiseModel(
        kind, backend, name=src.name, options=_batching(args, backend), path=src.folder, variant=variant_name
    )


def _load_torch(src: _Source, store: ModelStore, args: Mapping[str, Any]) -> PairwiseModel:
    cls = kind_class(src.kind)
    if src.manifest is None:
        weights = embedded_source(src.name, store) if src.embedded else src.folder
        spec, hf_tok = describe_source(weights, src.kind)
        encoder = text_encoder_from_hf(hf_tok)
    else:
        manifest = src.manifest
        weights = manifest.torch_weights_path(src.folder)
        if not (weights / "config.json").is_file():
            raise CorruptModelError(
                f"torch weights of {src.name} not found at {weights} (export with keep_torch_weights=True)"
            )
        if (
            args.get("verify", True)
            and manifest.source_sha256
            and sha256_weights(weights)[0] != manifest.source_sha256
        ):
            raise CorruptModelError(
                f"weights at {weights} changed since {src.name} was exported (sha256 differs)"
            )
        spec = manifest.spec
        encoder = TextEncoder(src.folder)
    spec = _apply_overrides(spec, args.get("overrides", {}))
    kind = cls(spec, encoder)
    module = cls.torch_module(
        weights,
        spec,
        dtype=_torch_dtype(args.get("dtype")),
        attn_implementation=args.get("attn_implementation"),
    )
    if _DTYPES.get(str(args.get("dtype"))) == "int8":
        from .torch_modules import quantize_int8

        module = quantize_int8(module)
    backend = TorchBackend(module, spec.inputs, device=args.get("device") or "cpu")
    return PairwiseModel(
        kind, backend, name=src.name, options=_batching(args, backend), path=src.folder, variant="torch"
    )


def _batching(args: Mapping[str, Any], backend: Any) -> RuntimeOptions:
    """The runtime options, with the batch size of the device when the caller set none."""
    options: RuntimeOptions = args["options"]
    if args.get("max_batch_size"):
        return options
    return replace(options, max_batch_size=default_batch_size(backend.provider))


BACKENDS: Mapping[str, Callable[[_Source, ModelStore, Mapping[str, Any]], PairwiseModel]] = {
    "onnx": _load_onnx,
    "torch": _load_torch,
}


def load_model(
    name_or_path: str | Path,
    backend: str | None = None,
    *,
    store: ModelStore | str | Path | None = None,
    kind: str | None = None,
    variant: str | None = None,
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
    dtype: Any = None,
    device: str | None = None,
    attn_implementation: str | None = "sdpa",
    max_tokens_per_batch: int | None = None,
    max_batch_size: int | None = None,
    max_chars: int | None = None,
    cache_items: int | None = None,
    max_query_tokens: int | None = None,
    max_passage_tokens: int | None = None,
    temperature: float | None = None,
    verify: bool = True,
    cuda_options: Mapping[str, Any] | None = None,
) -> PairwiseModel:
    """Load a model by store name, embedded name or folder.

    ``backend=None`` (default): ``onnx``, except that a CPU load of a model whose manifest records a measured
    CPU default (LLM kinds, models/cpu_default.py) takes that backend when this machine supports it (torch
    installed and the source weights present; bfloat16 needs bf16 units) and no variant or dtype was asked
    for.
    ``backend="onnx"``: an exported model (store name or folder with ``manifest.json``); ``variant`` picks
    ``fp32`` or ``int8`` (default: the manifest's ``default_variants`` for the device the session runs on,
    e.g. ``int8`` on CPU where the export chose it, always ``fp32`` on CUDA); ``providers`` forces ONNX
    Runtime providers. ``backend="torch"``: eager
    torch over the exported model's source weights, an embedded model's weights, or a checkpoint folder
    (with ``kind=``); ``dtype`` ``float32`` (default), ``bfloat16`` or ``int8`` (dynamic int8 Linear weights,
    CPU); a causal prompt model on torch runs a prefix shared by several prompts once (models/prefix.py).
    Budget and temperature overrides apply to either backend. ``max_batch_size``: sequences per backend
    call (default by device, :func:`default_batch_size`: 1 on CPU, 64 on CUDA).
    ``cache_items``: embeddings a bi-encoder keeps (0 = none). ``verify`` checks the graph's (and for torch
    the weights') sha256. ``cuda_options``: ONNX Runtime CUDA provider options (``device_id``,
    ``gpu_mem_limit`` in bytes, ``arena_extend_strategy``; see ``runtime.CudaOptions``), used where the
    session runs on CUDA."""
    if backend is not None and backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if kind is not None:
        kind_class(kind)
    st = as_store(store)
    src = _resolve(name_or_path, st, kind)
    if backend is None:
        backend = "onnx"
        record = src.manifest.cpu_default if src.manifest is not None else None
        if record and variant is None and dtype is None and device in (None, "cpu") and _device_of(providers) == "cpu":
            backend, chosen = backend_for_load(record)
            if backend == "torch" and not src.manifest.torch_weights_path(src.folder).joinpath("config.json").is_file():
                backend, chosen = "onnx", {}  # a store copied without the source weights
            dtype = chosen.get("dtype")
    base = RuntimeOptions()
    options = RuntimeOptions(
        max_tokens_per_batch=max_tokens_per_batch or base.max_tokens_per_batch,
        max_batch_size=max_batch_size or base.max_batch_size,  # by device below when not given
        max_chars=max_chars or base.max_chars,
        cache_items=base.cache_items if cache_items is None else cache_items,
    )
    args = {
        "max_batch_size": max_batch_size,
        "variant": variant,
        "providers": providers,
        "intra_op_threads": intra_op_threads,
        "dtype": dtype,
        "device": device,
        "attn_implementation": attn_implementation,
        "options": options,
        "verify": verify,
        "cuda_options": cuda_options,
        "overrides": {
            "max_query_tokens": max_query_tokens,
            "max_passage_tokens": max_passage_tokens,
            "temperature": temperature,
        },
    }
    return BACKENDS[backend](src, st, args)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str
    provider: str | None
    max_query_tokens: int | None
    max_passage_tokens: int | None
    variants: tuple[str, ...]
    exported: bool
    path: str
    error: str | None = None
    # the measured CPU default (LLM kinds), e.g. "torch-int8", with "(under load 7.2)" when it was measured busy
    cpu_default: str | None = None


def cpu_default_note(record: Mapping[str, Any]) -> str | None:
    """The measured CPU default in a word, and whether it was measured under load (then measure again)."""
    if not record:
        return None
    if record.get("under_load"):
        return (f"{record.get('choice')} (measured under load {record.get('load_average')} on "
                f"{record.get('cpus')} CPUs: run rerank models measure)")
    return str(record.get("choice"))


def list_models(store: ModelStore | str | Path | None = None) -> list[ModelInfo]:
    """Models in the store, plus embedded models not exported yet (``exported=False``). ``provider`` is the
    ONNX Runtime provider a load would use now (CUDA only when it really works)."""
    st = as_store(store)
    provider = preferred_provider()
    out = []
    for name in st.names():
        try:
            m = st.manifest(name)
        except CorruptModelError as exc:
            out.append(ModelInfo(name, "?", None, None, None, (), False, str(st.path(name)), str(exc)))
            continue
        out.append(
            ModelInfo(
                name,
                m.kind,
                provider,
                m.spec.max_query_tokens,
                m.spec.max_passage_tokens,
                tuple(m.variants),
                True,
                str(st.path(name)),
                cpu_default=cpu_default_note(m.cpu_default),
            )
        )
    listed = {info.name for info in out}
    for name, emb in sorted(EMBEDDED.items()):
        if name not in listed:
            out.append(ModelInfo(name, emb.kind, None, None, None, (), False, str(st.path(name))))
    return out
