"""``manifest.json``: what an exported model folder holds and how it was checked.

Layout of a model folder::

    model.onnx            fp32 graph (dynamic batch and sequence axes; fused offline for BERT-family encoders)
    model.int8.onnx       optional, dynamic int8 quantization of it
    tokenizer.json, ...   tokenizer files (the runtime reads tokenizer.json with `tokenizers`)
    manifest.json         this file
    torch/                optional copy of the source weights (export with keep_torch_weights=True)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CorruptModelError
from .types import ModelSpec

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_weights(folder: Path) -> tuple[str, list[str]]:
    """One digest over the weight files of a source folder (name and content of each, sorted by name)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest(), [p.name for p in files]


@dataclass(frozen=True)
class Variant:
    """One graph file of the model: ``fp32`` or ``int8``, with its digest and parity figures.

    ``graph``: how the graph was optimized at export (fp32). ``measured``: figures measured after export
    (speed, effectiveness), keyed by what was measured (see ``record_measurements``)."""

    file: str
    sha256: str
    bytes: int
    parity: Mapping[str, Any]
    quantization: str | None = None
    graph: Mapping[str, Any] | None = None
    measured: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "file": self.file,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "quantization": self.quantization,
            "parity": dict(self.parity),
        }
        if self.graph is not None:
            out["graph"] = dict(self.graph)
        if self.measured:
            out["measured"] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in self.measured.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Variant:
        return cls(
            file=str(data["file"]),
            sha256=str(data["sha256"]),
            bytes=int(data["bytes"]),
            parity=dict(data.get("parity") or {}),
            quantization=data.get("quantization"),
            graph=dict(data["graph"]) if data.get("graph") is not None else None,
            measured=dict(data.get("measured") or {}),
        )


@dataclass(frozen=True)
class Manifest:
    name: str
    spec: ModelSpec
    variants: Mapping[str, Variant]
    default_variant: str
    source: str
    source_sha256: str
    source_files: tuple[str, ...]
    opset: int
    created: str
    versions: Mapping[str, str] = field(default_factory=dict)
    torch_weights: str | None = None
    format_version: int = FORMAT_VERSION
    default_variants: Mapping[str, str] = field(default_factory=dict)  # per device: {"cpu": "int8", ...}
    # the CPU backend measured fastest at export (models/cpu_default.py): backend, variant/dtype, figures
    cpu_default: Mapping[str, Any] = field(default_factory=dict)
    # variants the export tried and left out, with why (a failed parity check, a graph that would not run)
    rejected_variants: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.spec.kind

    def variant_for(self, device: str) -> str:
        """The variant a load on ``device`` (``cpu`` or ``cuda``) picks when none is asked for."""
        name = self.default_variants.get(device, self.default_variant)
        return name if name in self.variants else self.default_variant

    def torch_weights_path(self, folder: Path) -> Path:
        """The torch weights of the model exported into ``folder``: its kept copy, else the source folder."""
        return Path(folder) / self.torch_weights if self.torch_weights else Path(self.source)

    @property
    def prompt_template(self) -> str | None:
        return self.spec.options.get("prompt_template")

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec.to_dict()
        return {
            "format_version": self.format_version,
            "name": self.name,
            "kind": spec.pop("kind"),
            "max_query_tokens": spec.pop("max_query_tokens"),
            "max_passage_tokens": spec.pop("max_passage_tokens"),
            "prompt_template": self.prompt_template,
            "opset": self.opset,
            "source": {"path": self.source, "sha256": self.source_sha256, "files": list(self.source_files)},
            "default_variant": self.default_variant,
            "default_variants": dict(self.default_variants),
            "variants": {k: v.to_dict() for k, v in self.variants.items()},
            **({"cpu_default": dict(self.cpu_default)} if self.cpu_default else {}),
            **({"rejected_variants": dict(self.rejected_variants)} if self.rejected_variants else {}),
            **spec,
            "torch_weights": self.torch_weights,
            "created": self.created,
            "versions": dict(self.versions),
        }

    def write(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        variants = {str(k): Variant.from_dict(v) for k, v in data["variants"].items()}
        default = str(data["default_variant"])
        if default not in variants:
            raise KeyError(f"default_variant {default!r} not among variants {sorted(variants)}")
        source = data.get("source") or {}
        return cls(
            name=str(data["name"]),
            spec=ModelSpec.from_dict(data),
            variants=variants,
            default_variant=default,
            source=str(source.get("path", "")),
            source_sha256=str(source.get("sha256", "")),
            source_files=tuple(source.get("files") or ()),
            opset=int(data["opset"]),
            created=str(data.get("created", "")),
            versions=dict(data.get("versions") or {}),
            torch_weights=data.get("torch_weights"),
            format_version=int(data.get("format_version", FORMAT_VERSION)),
            default_variants={str(k): str(v) for k, v in (data.get("default_variants") or {}).items()},
            cpu_default=dict(data.get("cpu_default") or {}),
            rejected_variants=dict(data.get("rejected_variants") or {}),
        )

    @classmethod
    def read(cls, folder: str | Path) -> Manifest:
        path = Path(folder) / MANIFEST_FILE
        if not path.is_file():
            raise CorruptModelError(f"manifest missing: {path}")
        try:
            data = json.loads(path.read_text())
            manifest = cls.from_dict(data)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptModelError(f"manifest unreadable: {path}: {exc}") from exc
        if manifest.format_version > FORMAT_VERSION:
            raise CorruptModelError(
                f"{path}: manifest format {manifest.format_version} is newer than this code "
                f"({FORMAT_VERSION})"
            )
        return manifest


def record_measurements(
    folder: str | Path,
    variant: str,
    key: str,
    figures: Mapping[str, Any],
    *,
    cpu_default: str | None = None,
) -> Manifest:
    """Write measured ``figures`` (JSON-ready) for ``variant`` under ``measured[key]`` in the manifest of
    the model in ``folder`` (e.g. key ``"dl19"``: nDCG@10 and its cost against fp32; key ``"cpu_speed"``:
    pairs/s and speed-up), replacing an earlier record of the same key. ``cpu_default`` also sets the
    variant CPU loads pick by default. The manifest is replaced atomically (write to a temporary file,
    then rename); graphs and digests are untouched."""
    import dataclasses

    folder = Path(folder)
    manifest = Manifest.read(folder)
    if variant not in manifest.variants:
        raise KeyError(f"{folder}: no variant {variant!r} (it has {', '.join(manifest.variants)})")
    if cpu_default is not None and cpu_default not in manifest.variants:
        raise KeyError(f"{folder}: cpu_default {cpu_default!r} is not one of {', '.join(manifest.variants)}")
    record = json.loads(json.dumps(dict(figures)))  # JSON-ready, detached from the caller's objects
    old = manifest.variants[variant]
    new_variant = dataclasses.replace(old, measured={**old.measured, key: record})
    defaults = dict(manifest.default_variants)
    if cpu_default is not None:
        defaults["cpu"] = cpu_default
    manifest = dataclasses.replace(
        manifest, variants={**manifest.variants, variant: new_variant}, default_variants=defaults
    )
    return replace_manifest(folder, manifest)


def replace_manifest(folder: str | Path, manifest: Manifest) -> Manifest:
    """Replace the manifest in ``folder`` atomically (temporary file, then rename); returns ``manifest``."""
    import os
    import tempfile

    folder = Path(folder)
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(manifest.to_dict(), indent=2) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / MANIFEST_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return manifest
