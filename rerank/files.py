"""Small file helpers shared by the command-line faces."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to stdout (``-``) or atomically to ``path``: a failure leaves no half-written file."""
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".rerank-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def first_unreadable(flags: Sequence[tuple[str, str | None]]) -> str | None:
    """The first of ``(flag, path)`` whose file cannot be opened, as a message naming the flag; else None
    (``None`` and ``-`` for stdin are skipped)."""
    for flag, path in flags:
        if path is None or path == "-":
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            return f"cannot read {flag} {path!r}: {exc.strerror or exc}"
    return None
