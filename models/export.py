"""Export a source checkpoint to an ONNX model folder, checked against torch before anything is written.

``export_model(source, kind, out_dir, ...)``:
1. reads the source folder (a transformers / sentence-transformers checkpoint, or an embedded name such as
   ``minilm``) and the kind's spec (budgets, template, label tokens, segment types, pooling);
2. writes into a temporary sibling of ``out_dir``: the tokenizer files, ``model.onnx``
   (``torch.onnx.export(..., dynamo=False)`` of the kind's wrapper module in ``eval()`` mode, eager
   attention, dynamic batch and sequence axes);
3. runs the same fresh random items (texts sampled from the vocabulary, some over budget) through the full
   runtime with the ONNX Runtime backend (CPU provider) and the torch eager backend, and raises
   ``ParityError`` unless max |p_onnx - p_torch| <= ``tolerance`` (1e-3, fp32) and the ordering agrees (no
   two items whose torch p differ by more than ``ORDER_MARGIN`` swap order, and no item crosses 0.5);
   For BERT-family encoders (bi-encoder, duo-cross-encoder) the graph is first fused offline by ONNX
   Runtime's transformer optimizer (``optimize_model(model_type="bert")``: EmbedLayerNormalization,
   Attention, SkipLayerNormalization, BiasGelu; ``optimize=None`` = where supported) and the fused graph is
   what is checked and saved; if the fused graph fails the check, the plain graph is kept and the reason
   recorded (manifest ``variants.fp32.graph``);
4. optionally quantizes (``quantize="int8"``: ``onnxruntime.quantization.quantize_dynamic`` of the saved
   graph, per-channel int8 weights of the MatMul and fused Attention nodes whose B is a weight; activation x
   activation products stay fp32; the LLM kinds use their own recipe, models/quantize.py: MatMul weights
   only, 7-bit range, read-out kept fp32, and try it as a CPU-default candidate even unasked) with its own,
   looser check: max |dp| <= ``int8_tolerance`` (0.4) and
   Kendall tau of p to torch >= ``int8_min_tau`` (0.7) over the pairs of items whose torch p differ by more
   than ``int8_margin`` (0.05): pairs closer than the quantization noise carry no order to keep (a random
   model's p all lie within a few hundredths, where the tau over all pairs measures the noise, not the
   export); the tau over all pairs and the order flips are recorded;
5. writes ``manifest.json`` with the figures, then renames the temporary folder to ``out_dir``.
``cpu_default`` names the variant a CPU load picks when none is asked for (``default_variants`` in the
manifest; CUDA loads keep ``fp32``, dynamic int8 has no CUDA kernels). Measured figures (speed, DL 2019
effectiveness) are added to a finished model's manifest with ``record_measurements``.
On any failure the temporary folder is removed: ``out_dir`` is either complete or absent.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .batching import default_batch_size
from .errors import CorruptModelError, MissingTokenizerError, ModelError, ParityError
from .manifest import Manifest, Variant, replace_manifest, sha256_file, sha256_weights
from .model import PairwiseModel
from .quantize import LLM_INT8_METHOD, quantize_llm_int8
from .registry import kind_class
from .runtime import CPU, OnnxBackend, TorchBackend
from .sources import describe_source, resolve_source
from .textenc import TOKENIZER_FILE, TextEncoder
from .types import Item, ModelSpec, RuntimeOptions
from .versions import library_versions

if TYPE_CHECKING:
    from ..progress import Progress

log = logging.getLogger("rerank.models")

DEFAULT_OPSET = 17
FP32_TOLERANCE = 1e-3
ORDER_MARGIN = 1e-5
# On an AVX2-only CPU (no VNNI) the embedded MiniLM's int8 export measured max |dp| 0.349-0.351 over its parity
# pairs from run to run (a single pair; Kendall tau at the margin 0.81): 0.35 failed one full-suite run in two.
# The order criterion (INT8_MIN_TAU) is the one that guards the ranking; the |dp| bound catches a broken graph.
INT8_TOLERANCE = 0.4
INT8_MARGIN = 0.05
INT8_MIN_TAU = 0.7
QUANTIZATIONS = ("int8",)
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
FP16_FILE = "model.fp16.onnx"
FP16_TOLERANCE = 0.02
FP16_MIN_TAU = 0.95
FP16_METHOD = "onnxruntime.transformers OnnxModel.convert_float_to_float16(keep_io_types=True)"


# --- parity ---------------------------------------------------------------------------------------------
def random_items(
    hf_tokenizer: Any, spec: ModelSpec, rng: np.random.Generator, n_queries: int, n_passages: int
) -> list[Item]:
    """All ordered pairs of ``n_passages`` random passages for each of ``n_queries`` random queries.

    Texts are decoded random token ids from the non-special vocabulary; lengths run up to 1.25 times the
    budget, so some inputs are truncated."""
    special = set(hf_tokenizer.all_special_ids)
    vocab = np.array([i for i in range(len(hf_tokenizer)) if i not in special], dtype=np.int64)

    def text(budget: int) -> str:
        n = int(rng.integers(1, max(2, budget * 5 // 4) + 1))
        s = hf_tokenizer.decode(rng.choice(vocab, size=n).tolist(), skip_special_tokens=True).strip()
        return s or "text"

    items: list[Item] = []
    for _ in range(n_queries):
        q = text(spec.max_query_tokens)
        ps = [text(spec.max_passage_tokens) for _ in range(n_passages)]
        items.extend((q, a, b) for i, a in enumerate(ps) for j, b in enumerate(ps) if i != j)
    return items


def parity_figures(ref: np.ndarray, got: np.ndarray, margin: float) -> dict[str, Any]:
    """Max/mean |p diff|, order flips (pairs of items whose ref p differ by > margin and swap order in got)
    and decision flips (items whose ref p is > margin from 0.5 and lands on the other side)."""
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    diff = np.abs(ref - got)
    d_ref = ref[:, None] - ref[None, :]
    d_got = got[:, None] - got[None, :]
    order_flips = int(((d_ref > margin) & (d_got < 0)).sum())
    decision_flips = int((((ref - 0.5) * (got - 0.5)) < 0)[np.abs(ref - 0.5) > margin].sum())
    s_ref, s_got = np.sign(d_ref), np.sign(d_got)
    denom = np.sqrt(float(np.abs(s_ref).sum()) * float(np.abs(s_got).sum()))
    tau = float((s_ref * s_got).sum() / denom) if denom > 0 else 1.0
    apart = np.abs(d_ref) > margin  # pairs whose order the reference states beyond the margin
    pairs_apart = int(apart.sum()) // 2
    tau_apart = float((s_ref * s_got)[apart].sum() / apart.sum()) if pairs_apart else 1.0
    return {
        "items": len(ref),
        "kendall_tau": tau,
        "kendall_tau_at_margin": tau_apart,
        "pairs_at_margin": pairs_apart,
        "max_abs_diff_p": float(diff.max()) if len(diff) else 0.0,
        "mean_abs_diff_p": float(diff.mean()) if len(diff) else 0.0,
        "p_min": float(ref.min()) if len(ref) else 0.0,
        "p_max": float(ref.max()) if len(ref) else 0.0,
        "order_margin": margin,
        "order_flips": order_flips,
        "decision_flips": decision_flips,
        "order_agrees": order_flips == 0 and decision_flips == 0,
    }


def _check(figures: dict[str, Any], tolerance: float, min_tau: float | None, what: str) -> None:
    """fp32 (``min_tau`` None): max |dp| <= tolerance and no order or decision flip. Quantized: max |dp| <=
    tolerance and Kendall tau over the pairs apart by more than the margin >= ``min_tau`` (flips are
    recorded, not required to be zero)."""
    figures["tolerance"] = tolerance
    if min_tau is None:
        figures["criterion"] = "max_abs_diff_p <= tolerance and order_agrees"
        ok = figures["max_abs_diff_p"] <= tolerance and figures["order_agrees"]
    else:
        figures["min_kendall_tau"] = min_tau
        figures["criterion"] = "max_abs_diff_p <= tolerance and kendall_tau_at_margin >= min_kendall_tau"
        ok = figures["max_abs_diff_p"] <= tolerance and figures["kendall_tau_at_margin"] >= min_tau
    figures["passed"] = bool(ok)
    if not ok:
        raise ParityError(
            f"{what}: ONNX vs torch parity failed: max |dp| = {figures['max_abs_diff_p']:.3g} "
            f"(tolerance {tolerance:g}), Kendall tau {figures['kendall_tau']:.4f} (over the "
            f"{figures['pairs_at_margin']} pairs apart by more than {figures['order_margin']:g}: "
            f"{figures['kendall_tau_at_margin']:.4f}), order flips "
            f"{figures['order_flips']}, decision flips {figures['decision_flips']}"
        )


# --- export ---------------------------------------------------------------------------------------------
def _example_inputs(spec: ModelSpec, vocab_size: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(low=min(5, vocab_size - 1), high=vocab_size, size=(2, 8), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # padding in the trace, so no "no padding" shortcut gets baked in
    ids[1, 5:] = spec.pad_token_id
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return tuple(feeds[name] for name in spec.inputs)


def _export_onnx(module: Any, spec: ModelSpec, path: Path, opset: int, vocab_size: int) -> None:
    import torch

    axes = {name: {0: "batch", 1: "sequence"} for name in spec.inputs}
    axes[spec.output] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module.eval()
        with torch.no_grad():
            torch.onnx.export(
                module,
                _example_inputs(spec, vocab_size),
                str(path),
                input_names=list(spec.inputs),
                output_names=[spec.output],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )


class _DropQuantizerLogs(logging.Filter):
    """onnxruntime.quantization logs per-tensor chatter through the root logger; keep it out of the way."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """Silence the ONNX Runtime quantizer's and optimizer's root-logger chatter and warnings."""
    root = logging.getLogger()
    drop = _DropQuantizerLogs()
    root.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(drop)


INT8_METHOD = "dynamic-int8-per-channel-weights"


def _convert_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and activations (the CUDA default where exported), float32 inputs and output kept, so
    the runtime feeds and reads the same arrays. ONNX Runtime's converter keeps the ops that are unsafe in
    fp16 (its block list) in float32."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    with _quiet_onnxruntime():
        model = OnnxModel(onnx.load(str(src)))
        model.convert_float_to_float16(keep_io_types=True)
        model.save_model_to_file(str(dst))


def _quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8: signed per-channel int8 weights of the MatMul and fused Attention nodes, activations
    quantized at run time; only products with a weight operand (``MatMulConstBOnly``), so Q x K and
    attention x V stay fp32 in an unfused graph too. Embedding lookups (Gather) stay fp32.

    On all-MiniLM-L6-v2 over TREC DL 2019 pairs, per-channel weights kept Kendall tau 0.93 to fp32 p;
    per-tensor weights (the quantize_dynamic default) 0.83 (see bench/results/models_cpu.md for the
    speed and bench/results/models_effectiveness.md for the nDCG@10 cost)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_onnxruntime():
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            # fused (com.microsoft) nodes defeat ONNX shape inference; their outputs are float
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def _write_int8(cls: Any, src: Path, dst: Path) -> str:
    """The int8 graph of kind ``cls``: the LLM recipe (models/quantize.py) for the prompt kinds, the encoder
    recipe otherwise; returns the method recorded in the manifest."""
    if not cls.measured_cpu_default:
        _quantize_int8(src, dst)
        return INT8_METHOD
    with _quiet_onnxruntime():
        quantize_llm_int8(src, dst)
    return LLM_INT8_METHOD


# HF ``model_type`` -> ONNX Runtime transformer optimizer model type (encoder kinds only).
OPTIMIZER_MODEL_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "camembert": "bert",
    "electra": "bert",
    "distilbert": "bert",
}
OPTIMIZED_KINDS = ("bi-encoder", "duo-cross-encoder")


def optimizer_model_type(kind: str, hf_config: Any) -> str | None:
    """The optimizer model type for this kind and architecture, or None where fusion is not supported."""
    if kind not in OPTIMIZED_KINDS:
        return None
    return OPTIMIZER_MODEL_TYPES.get(str(getattr(hf_config, "model_type", "")))


def optimize_graph(path: Path, out: Path, model_type: str, hf_config: Any) -> dict[str, Any]:
    """Fuse ``path`` offline with ONNX Runtime's transformer optimizer (CPU, no ORT-level rewrites, so the
    saved graph is portable to any provider); returns what was fused."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    heads = int(getattr(hf_config, "num_attention_heads", 0) or getattr(hf_config, "n_heads", 0) or 0)
    hidden = int(getattr(hf_config, "hidden_size", 0) or getattr(hf_config, "dim", 0) or 0)
    with _quiet_onnxruntime():
        model = optimize_model(
            str(path),
            model_type=model_type,
            num_heads=heads,
            hidden_size=hidden,
            optimization_options=FusionOptions(model_type),
            opt_level=0,
            use_gpu=False,
        )
        fused = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
        model.save_model_to_file(str(out))
    return {
        "optimizer": "onnxruntime.transformers.optimizer",
        "model_type": model_type,
        "num_heads": heads,
        "hidden_size": hidden,
        "fused": fused,
    }


def _place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished temporary folder to ``out`` (replacing it when ``overwrite``)."""
    old = None
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists (pass overwrite=True to replace it)")
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_model(
    source_dir_or_name: str | Path,
    kind: str,
    out_dir: str | Path,
    *,
    quantize: str | None = None,
    max_query_tokens: int | None = None,
    max_passage_tokens: int | None = None,
    name: str | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance: float = FP32_TOLERANCE,
    int8_tolerance: float = INT8_TOLERANCE,
    int8_margin: float = INT8_MARGIN,
    int8_min_tau: float = INT8_MIN_TAU,
    overwrite: bool = False,
    keep_torch_weights: bool = False,
    parity_queries: int = 3,
    parity_passages: int = 6,
    parity_seed: int | None = None,
    optimize: bool | None = None,
    cpu_default: str | None = None,
    fp16: bool = False,
    fp16_tolerance: float = FP16_TOLERANCE,
    tokenizer: str | Path | None = None,
    progress: Progress | None = None,
    **kind_options: Any,
) -> Manifest:
    """Export ``source_dir_or_name`` as model kind ``kind`` into ``out_dir``; returns the manifest.

    ``kind_options`` go to the kind: ``temperature`` (bi-encoder, mono kinds), ``segments``
    (duo-cross-encoder), ``prompt_template`` (duo-t5, mono-t5, prp), ``chat_template`` (prp: None = use the
    tokenizer's if it has one), ``answer_prefix`` (prp: text after the generation prompt, or the T5 decoder
    prefix), ``truncation`` (``fields`` or ``reference``) and ``max_input_tokens`` (duo-t5, mono-t5,
    mono-cross-encoder). ``tokenizer``: a folder to read the tokenizer from instead of the checkpoint's.
    ``fp16``: also write ``model.fp16.onnx`` (checked on the CPU provider against torch fp32: max |dp| <=
    ``fp16_tolerance`` and Kendall tau >= 0.95), the variant CUDA loads pick by default.
    ``optimize``: fuse the graph with ONNX Runtime's transformer optimizer (None: where the architecture is
    supported; True: required). ``cpu_default``: the variant CPU loads pick by default (``fp32`` or, with
    ``quantize``, ``int8``), or ``auto`` (the default for LLM kinds, ``Kind.measured_cpu_default``): the
    fastest backend measured on this machine that holds the fp32 decisions (models/cpu_default.py),
    recorded in the manifest's ``cpu_default``. ``progress`` (a :class:`rerank.progress.Progress`) is told each
    step (export, optimize, parity, quantize, ...) as it starts. Raises ``ParityError`` (and writes nothing)
    when the ONNX graph does not match torch."""
    import torch

    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ModelError(f"unknown quantization {quantize!r}; known: {', '.join(QUANTIZATIONS)}")
    cls = kind_class(kind)
    if cpu_default is None and cls.measured_cpu_default:
        cpu_default = "auto"
    if cpu_default not in (None, "auto", "fp32", quantize):
        raise ModelError(
            f"cpu_default {cpu_default!r} is not a variant of this export (fp32, {quantize}) nor 'auto'"
        )
    unknown = sorted(set(kind_options) - cls.export_options)
    if unknown:
        allowed = ", ".join(sorted(cls.export_options)) or "none"
        raise ModelError(f"{kind} does not take the option(s) {', '.join(unknown)}; it takes: {allowed}")
    src = resolve_source(source_dir_or_name)
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass overwrite=True to replace it)")
    spec, hf_tok = describe_source(
        src, kind, tokenizer=tokenizer, max_query_tokens=max_query_tokens, max_passage_tokens=max_passage_tokens,
        **kind_options,
    )
    opt_type = None
    if optimize is not False:
        from transformers import AutoConfig

        hf_config = AutoConfig.from_pretrained(str(src))
        opt_type = optimizer_model_type(kind, hf_config)
        if opt_type is None and optimize:
            raise ModelError(f"no graph optimizer for kind {kind!r} with model type {hf_config.model_type!r}")
    source_sha, source_files = sha256_weights(src)
    seed = int(parity_seed if parity_seed is not None else np.random.SeedSequence().entropy % (2**31))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; the finished folder is shared like any other
    stage = progress.stage if progress is not None else lambda text: None
    try:
        stage("export to ONNX")
        hf_tok.save_pretrained(str(tmp))
        if not (tmp / TOKENIZER_FILE).is_file():
            raise MissingTokenizerError(f"{src}: the tokenizer did not save a {TOKENIZER_FILE}")
        runtime_kind = cls(spec, TextEncoder(tmp))  # checks the budgets against the model's positions
        module = cls.torch_module(src, spec, attn_implementation="eager")
        _export_onnx(module, spec, tmp / ONNX_FILE, opset, len(hf_tok))

        stage("torch reference scores")
        items = random_items(hf_tok, spec, np.random.default_rng(seed), parity_queries, parity_passages)
        options = RuntimeOptions(max_chars=10**9)
        with torch.inference_mode():
            ref = PairwiseModel(runtime_kind, TorchBackend(module, spec.inputs), options=options)
            ref_result = ref.compare_batch(items)
        truncated = ref_result.stats.truncated_items
        variants: dict[str, Variant] = {}

        def check_variant(file: str, tol: float, margin: float, min_tau: float | None, quant: str | None):
            stage(f"parity {file}")
            backend = OnnxBackend(tmp / file, output=spec.output, providers=[CPU])
            got = PairwiseModel(runtime_kind, backend, options=options).compare_batch(items).p
            figures = parity_figures(ref_result.p, got, margin)
            figures.update(seed=seed, truncated_items=truncated, provider=backend.provider)
            _check(figures, tol, min_tau, f"{src.name} ({kind}, {file})")
            log.info("%s parity: %s", file, figures)
            path = tmp / file
            return Variant(file, sha256_file(path), path.stat().st_size, figures, quant)

        graph: dict[str, Any] = {"optimizer": None}
        if opt_type is not None:
            plain = tmp / "model.plain.onnx"
            os.rename(tmp / ONNX_FILE, plain)
            try:
                stage("optimize graph")
                graph = optimize_graph(plain, tmp / ONNX_FILE, opt_type, hf_config)
                variants["fp32"] = check_variant(ONNX_FILE, tolerance, ORDER_MARGIN, None, None)
            except Exception as exc:
                if optimize:
                    raise
                log.warning("%s: keeping the unfused graph (optimizer: %s)", src.name, exc)
                graph = {"optimizer": None, "optimizer_failed": f"{type(exc).__name__}: {exc}"[:500]}
                os.replace(plain, tmp / ONNX_FILE)
            else:
                plain.unlink()
        if "fp32" not in variants:
            variants["fp32"] = check_variant(ONNX_FILE, tolerance, ORDER_MARGIN, None, None)
        variants["fp32"] = replace(variants["fp32"], graph=graph)
        # every variant is checked before anything is timed; a variant that fails its check is recorded and
        # left out, and the others are written (fp32, the reference graph, is the one whose failure is fatal)
        rejected: dict[str, Any] = {}

        def try_variant(name: str, file: str, write: Any, tol: float, margin: float, min_tau: float) -> None:
            try:
                method = write()
                variants[name] = check_variant(file, tol, margin, min_tau, method)
            except (ParityError, CorruptModelError) as exc:
                log.warning("%s: variant %s left out: %s", src.name, name, exc)
                rejected[name] = {"file": file, "reason": f"{type(exc).__name__}: {exc}"[:1000]}
                (tmp / file).unlink(missing_ok=True)

        measure = cpu_default == "auto" and cls.measured_cpu_default
        if quantize == "int8" or measure:
            # an LLM's int8 graph (its own recipe, models/quantize.py) is a CPU-default candidate even unasked,
            # when it passes its parity check
            stage("quantize int8")
            try_variant("int8", INT8_FILE, lambda: _write_int8(cls, tmp / ONNX_FILE, tmp / INT8_FILE),
                        int8_tolerance, int8_margin, int8_min_tau)
        if fp16:
            stage("convert fp16")
            try_variant("fp16", FP16_FILE, lambda: _convert_fp16(tmp / ONNX_FILE, tmp / FP16_FILE) or "fp16",
                        fp16_tolerance, INT8_MARGIN, FP16_MIN_TAU)
        if cpu_default not in (None, "auto") and cpu_default not in variants:
            log.warning("%s: cpu_default %s was left out; CPU loads take fp32", src.name, cpu_default)
            cpu_default = "fp32"
        measured_default: dict[str, Any] = {}
        if measure:
            stage("measure the CPU default")
            cpu_variants = {k: v for k, v in variants.items() if k != "fp16"}  # fp16 is never a CPU default
            with torch.inference_mode():
                checks = check_items(hf_tok, spec, seed, items, ref_result.p, lambda x: ref.compare_batch(x).p)
            measured_default = _measure_cpu_default(cls, src, spec, runtime_kind, tmp, cpu_variants, checks,
                                                    options)
            if "int8" in rejected:
                measured_default["candidates"]["onnx-int8"] = {"backend": "onnx", "variant": "int8",
                                                               "eligible": False,
                                                               "parity_failed": rejected["int8"]["reason"]}
            cpu_default = measured_default.get("variant", "fp32")
            log.info("%s: CPU default %s (%s)", src.name, measured_default["choice"],
                     {k: v.get("seconds_per_item") for k, v in measured_default["candidates"].items()})
        elif cpu_default == "auto":
            cpu_default = "fp32"
        torch_weights = None
        if keep_torch_weights:
            shutil.copytree(src, tmp / "torch")
            torch_weights = "torch"
        manifest = Manifest(
            name=name or out.name,
            spec=spec,
            variants=variants,
            default_variant="fp32",
            default_variants={"cpu": cpu_default or "fp32", "cuda": "fp16" if "fp16" in variants else "fp32"},
            source=str(src),
            source_sha256=source_sha,
            source_files=tuple(source_files),
            opset=opset,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            versions=library_versions("torch", "transformers", "onnx", "onnxruntime", "tokenizers"),
            torch_weights=torch_weights,
            cpu_default=measured_default,
            rejected_variants=rejected,
        )
        manifest.write(tmp)
        _place(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def check_items(
    hf_tokenizer: Any, spec: ModelSpec, seed: int, items: Sequence[Item], reference: np.ndarray, score: Any
) -> tuple[list[Item], np.ndarray]:
    """The CPU-default rule's check prompts: ``items`` and their torch fp32 ``reference`` p, cut or topped up
    with random queries (all ordered pairs of 4 passages each, scored by ``score``) to ``MIN_CHECK_ITEMS``
    (topped up by whole queries: a few more)."""
    from .cpu_default import MIN_CHECK_ITEMS

    missing = MIN_CHECK_ITEMS - len(items)
    if missing <= 0:  # enough: the first MIN_CHECK_ITEMS (each candidate runs them all once)
        return list(items[:MIN_CHECK_ITEMS]), np.asarray(reference, dtype=np.float64)[:MIN_CHECK_ITEMS]
    extra = random_items(hf_tokenizer, spec, np.random.default_rng(seed + 1), -(-missing // 12), 4)
    return [*items, *extra], np.concatenate([np.asarray(reference, dtype=np.float64), score(extra)])


def _measure_cpu_default(
    cls: Any, src: Path, spec: Any, runtime_kind: Any, folder: Path, variants: Mapping[str, Variant],
    checks: tuple[Sequence[Item], np.ndarray], options: RuntimeOptions,
) -> dict[str, Any]:
    """Measure the CPU candidates of an LLM kind; see models/cpu_default.py. ``checks``: the check items and
    their torch fp32 p; the first ``TIMING_ITEMS`` of them are timed."""
    import torch

    from .cpu_default import BF16_TOLERANCE, TIMING_ITEMS, Candidate, choose, has_bf16_units
    from .torch_modules import quantize_int8

    items, reference = checks
    timed = list(items[:TIMING_ITEMS])

    def runs(model: PairwiseModel) -> dict[str, Any]:
        return {"run": lambda: model.compare_batch(timed).p, "check": lambda: model.compare_batch(items).p}

    def onnx_runs(file: str) -> dict[str, Any]:
        return runs(PairwiseModel(runtime_kind, OnnxBackend(folder / file, output=spec.output, providers=[CPU]),
                                  options=options))

    candidates = [Candidate("onnx-fp32", "onnx", "fp32", None, FP32_TOLERANCE, **onnx_runs(variants["fp32"].file))]
    if "int8" in variants:
        candidates.append(Candidate("onnx-int8", "onnx", "int8", None, INT8_TOLERANCE,
                                    **onnx_runs(variants["int8"].file)))
    torch_options = replace(options, max_batch_size=default_batch_size("torch:cpu"))

    def torch_runs(module: Any) -> dict[str, Any]:
        return runs(PairwiseModel(runtime_kind, TorchBackend(module, spec.inputs), options=torch_options))

    fp32 = cls.torch_module(src, spec, dtype=torch.float32, attn_implementation="sdpa")
    if getattr(fp32, "shares_prefixes", False):  # without shared prefixes torch fp32 is the graph onnx-fp32 runs
        candidates.append(Candidate("torch-fp32", "torch", None, "float32", FP32_TOLERANCE, **torch_runs(fp32)))
    # a quantized copy of the same module (quantize_dynamic copies): the weights are read once
    candidates.append(Candidate("torch-int8", "torch", None, "int8", INT8_TOLERANCE,
                                **torch_runs(quantize_int8(fp32))))
    if has_bf16_units():
        bf16 = cls.torch_module(src, spec, dtype=torch.bfloat16, attn_implementation="sdpa")
        candidates.append(Candidate("torch-bf16", "torch", None, "bfloat16", BF16_TOLERANCE, **torch_runs(bf16)))
    return choose(candidates, reference[: len(timed)], check_reference=reference)


def measure_cpu_default(folder: str | Path, *, seed: int = 0, queries: int = 1, passages: int = 4) -> Manifest:
    """Measure the CPU default of the exported LLM in ``folder`` on this machine and record it in its manifest
    (for a store copied to another CPU, or an export made before the rule); returns the new manifest."""
    import dataclasses

    import torch
    from transformers import AutoTokenizer

    folder = Path(folder)
    manifest = Manifest.read(folder)
    cls = kind_class(manifest.kind)
    if not cls.measured_cpu_default:
        raise ModelError(f"kind {manifest.kind!r} has no measured CPU default (the LLM kinds have one)")
    src = manifest.torch_weights_path(folder)
    spec = manifest.spec
    runtime_kind = cls(spec, TextEncoder(folder))
    hf_tok = AutoTokenizer.from_pretrained(str(folder))
    items = random_items(hf_tok, spec, np.random.default_rng(seed), queries, passages)
    options = RuntimeOptions(max_chars=10**9)
    module = cls.torch_module(src, spec, attn_implementation="eager")
    with torch.inference_mode():
        reference = PairwiseModel(runtime_kind, TorchBackend(module, spec.inputs), options=options)
        checks = check_items(hf_tok, spec, seed, items, reference.compare_batch(items).p,
                             lambda x: reference.compare_batch(x).p)
    variants = {k: v for k, v in manifest.variants.items() if k != "fp16"}  # fp16 is never a CPU default
    record = _measure_cpu_default(cls, src, spec, runtime_kind, folder, variants, checks, options)
    cpu_variant = record.get("variant", manifest.default_variants.get("cpu", "fp32"))
    manifest = dataclasses.replace(manifest, cpu_default=record,
                                   default_variants={**manifest.default_variants, "cpu": cpu_variant})
    return replace_manifest(folder, manifest)

