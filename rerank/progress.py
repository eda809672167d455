"""Shared pieces of the progress lines of long offline runs (rank, bench budgets, index build)."""

from __future__ import annotations


def eta_text(seconds: float) -> str:
    """Time left as ``1h02m``, ``3m05s`` or ``12s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
