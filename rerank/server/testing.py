"""Test doubles for the server: fake comparators served like models (no model files, no ONNX Runtime).

``FakeModel`` answers from a relevance read off the passage text (its first integer), so rankings are
known in advance; it counts calls and items and can be slowed down (``delay_s``) or held (``gate``).
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_NUMBER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class FakeOptions:
    max_chars: int = 20_000


class FakeModel:
    """Fake pairwise model: p(a, b) = sigmoid(rel(a) - rel(b)), rel = the first integer in the text (0 if
    none). ``delay_s`` sleeps per call; ``gate`` (an Event) holds every call until set; a passage
    containing ``fail_marker`` makes the call raise ValueError. Thread-safe counters: ``calls``, ``items``,
    ``batch_sizes``."""

    kind = "fake"
    provider = "python"
    max_query_tokens = 0
    max_passage_tokens = 0

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        max_chars: int = 20_000,
        gate: threading.Event | None = None,
        fail_marker: str | None = None,
    ) -> None:
        self.delay_s = delay_s
        self.options = FakeOptions(max_chars)
        self.gate = gate
        self.fail_marker = fail_marker
        self._lock = threading.Lock()
        self.calls = 0
        self.items = 0
        self.batch_sizes: list[int] = []
        self.started = threading.Event()  # set when a call begins

    @staticmethod
    def relevance(text: str) -> float:
        m = _NUMBER.search(text)
        return float(m.group()) if m else 0.0

    def compare_batch(self, items: Sequence[tuple[str, str, str]]) -> np.ndarray:
        self.started.set()
        if self.gate is not None:
            self.gate.wait()
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_marker is not None and any(
            self.fail_marker in a or self.fail_marker in b for _, a, b in items
        ):
            raise ValueError("fake model failure")
        with self._lock:
            self.calls += 1
            self.items += len(items)
            self.batch_sizes.append(len(items))
        gap = np.array([self.relevance(a) - self.relevance(b) for _, a, b in items], dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip(gap, -500.0, 500.0)))


class SlowFakeModel(FakeModel):
    """A FakeModel that takes ``delay_s`` (default 0.5 s) per call: for deadline and shutdown tests."""

    def __init__(self, delay_s: float = 0.5, **kwargs: object) -> None:
        super().__init__(delay_s=delay_s, **kwargs)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    """``python -m rerank.server.testing --port 0``: serve a FakeModel as ``fake`` until SIGTERM (for
    measuring the serving cost without model time)."""
    import argparse
    import signal

    from .app import RerankServer
    from .config import ServerConfig

    parser = argparse.ArgumentParser(prog="python -m rerank.server.testing")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--http-port", type=int, default=None, help="also serve the HTTP face on this port")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = RerankServer(
        ServerConfig(host=args.host, port=args.port, http_port=args.http_port),
        models={"fake": FakeModel(delay_s=args.delay_s)},
    )
    port = server.start()
    sys.setswitchinterval(0.001)  # as `rerank serve` does
    print(f"rerank: serving on {args.host}:{port}", flush=True)
    while not stop.wait(1.0):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
