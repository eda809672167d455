"""``ensure_embedded``: export an embedded model into the store once (later calls find it there and return
at once), with the reference figures measured on its export recorded in the manifest."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import IO, Any

from ..progress import Progress
from .embedded import embedded_model, embedded_source
from .errors import CorruptModelError
from .export import export_model
from .manifest import MANIFEST_FILE, Manifest, record_measurements
from .registry import kind_class
from .store import ModelStore, as_store

log = logging.getLogger("rerank.models")


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
    spec = embedded_model(name)
    st = as_store(store)
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
