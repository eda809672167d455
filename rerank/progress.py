"""The one progress reporter of long offline runs: ``rank``, ``bench budgets``, ``index build/add/search`` and
``models ensure``.

On a terminal it is a live `tqdm <https://tqdm.github.io>`_ bar (done/total, percentage, rate, time left);
elsewhere (CI logs, pipes, files) a complete plain line every ``interval_s`` seconds and one at the end, each
with done/total, rate, elapsed time and ETA, so a log never fills with carriage returns; ``quiet`` writes
nothing. Resumed runs start at ``initial``: done/total counts the work of earlier runs, while the rate and the
ETA count only this run's.

Why tqdm and not rich: tqdm is small, pure Python, without dependencies, already in every environment we build
(transformers and huggingface-hub depend on it), and draws one bar on any ``file`` object we hand it; rich's live
display takes over the whole console and writes nothing until the end when the stream is not a terminal, so
the plain-line mode would be ours either way. The plain lines use tqdm's own interval and rate formatting.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, Any

DEFAULT_INTERVAL_S = 10.0


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return False


class Progress:
    """Work done out of ``total`` (None: unknown), reported on ``stream`` (stderr by default).

    ``update(n, **counts)`` adds ``n`` units done; ``counts`` (e.g. ``comparisons=412``) are summed and shown
    as rates (``412 comparisons/s``). ``stage(text)`` names the step now running (for a few long steps, e.g.
    an export). Use it as a context manager or call ``close()``; ``reset(total)`` starts it over (an object
    handed to a library function that learns the total itself)."""

    def __init__(
        self, total: int | None, *, desc: str, unit: str, quiet: bool = False, stream: IO[str] | None = None,
        initial: int = 0, interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.desc, self.unit, self.quiet, self.interval_s = desc, unit, quiet, interval_s
        self.stream: IO[str] = sys.stderr if stream is None else stream
        self.terminal = not quiet and _is_terminal(self.stream)
        self._bar: Any = None  # a tqdm bar on a terminal
        self.reset(total, initial=initial)

    def reset(self, total: int | None, *, initial: int = 0) -> None:
        """Start over at ``initial`` of ``total``: clock, counts and (on a terminal) a new bar."""
        self.close()
        self.total, self.initial, self.n = total, initial, initial
        self.counts: dict[str, float] = {}
        self.current = ""
        self.start = self._last_line = time.monotonic()
        self._printed: tuple[int, str] | None = None
        self.closed = False
        if self.terminal:
            from tqdm import tqdm  # imported on first use: the server imports this module, never draws a bar

            self._bar = tqdm(total=total, initial=initial, desc=self.desc, unit=f" {self.unit}", file=self.stream,
                             dynamic_ncols=True, leave=True)

    def update(self, n: int = 1, **counts: float) -> None:
        self.n += n
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + value
        if self._bar is not None:
            if self.counts or self.current:
                self._bar.set_postfix_str(self._extras(), refresh=False)
            self._bar.update(n)
        elif not self.quiet and time.monotonic() - self._last_line >= self.interval_s:
            self._write_line()

    def stage(self, text: str) -> None:
        """The step now running; the previous one (if any) counts as done. A plain line per step."""
        if self.current:
            self.n += 1
        self.current = text
        if self._bar is not None:
            self._bar.set_postfix_str(self._extras(), refresh=False)
            self._bar.update(self.n - self._bar.n)
            self._bar.refresh()
        elif not self.quiet:
            self._write_line()

    def close(self) -> None:
        if getattr(self, "closed", True):
            return
        self.closed = True
        if self.current:
            self.n += 1
            self.current = ""
        if self._bar is not None:
            self._bar.set_postfix_str(self._extras(), refresh=False)
            self._bar.update(self.n - self._bar.n)
            self._bar.close()
            self._bar = None
        elif not self.quiet and self._printed != (self.n, self.current) and (self.n > self.initial or self._printed):
            self._write_line()  # the final line, unless nothing happened or the last line said it all

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- the plain line -----------------------------------------------------------------------------------
    def line(self) -> str:
        """``rank: queries 3/6 (50%) | 1.20 queries/s | 410 comparisons/s | elapsed 00:05 | ETA 00:03``."""
        from tqdm import tqdm

        elapsed = time.monotonic() - self.start
        done = self.n - self.initial
        parts = [f"{self.desc}: {self.unit} {self.n:,}" + (
            f"/{self.total:,} ({100.0 * self.n / max(self.total, 1):.0f}%)" if self.total is not None else "")]
        if elapsed > 0 and not self.current:
            parts.append(f"{done / elapsed:,.2f} {self.unit}/s")
        if self._extras():
            parts.append(self._extras())
        parts.append(f"elapsed {tqdm.format_interval(elapsed)}")
        if self.total is not None and done > 0:
            parts.append(f"ETA {tqdm.format_interval(max(self.total - self.n, 0) * elapsed / done)}")
        return " | ".join(parts)

    def _extras(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rates = [f"{value / elapsed:,.0f} {name}/s" for name, value in self.counts.items()]
        return " | ".join([*rates, *([self.current] if self.current else [])])

    def _write_line(self) -> None:
        self._last_line = time.monotonic()
        self._printed = (self.n, self.current)
        self.stream.write(self.line() + "\n")
        self.stream.flush()

