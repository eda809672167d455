"""The sequence cache: graph output rows by input sequence, for kinds whose sequences recur."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from .errors import ModelError


class SequenceCache:
    """Graph output rows by input sequence (token ids and types): a bounded, thread-safe LRU.

    Content-addressed (a 16-byte BLAKE2b of the sequence), so it holds no request state: any caller asking
    for a sequence gets the row the graph gives for it. It makes a bi-encoder encode each text once across
    a request's sampling rounds (and across requests that share texts), not once per round."""

    def __init__(self, max_items: int) -> None:
        if max_items < 1:
            raise ModelError(f"cache size must be >= 1, got {max_items}")
        self.max_items = int(max_items)
        self._rows: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(ids: Sequence[int], types: Sequence[int] | None) -> bytes:
        h = hashlib.blake2b(np.asarray(ids, dtype=np.int64).tobytes(), digest_size=16)
        if types is not None:
            h.update(b"|" + np.asarray(types, dtype=np.int8).tobytes())
        return h.digest()

    def __len__(self) -> int:
        return len(self._rows)

    def get_many(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        with self._lock:
            found = [self._rows.get(k) for k in keys]
            for k, row in zip(keys, found, strict=True):
                if row is not None:
                    self._rows.move_to_end(k)
            hit = sum(r is not None for r in found)
            self.hits += hit
            self.misses += len(keys) - hit
        return found

    def put_many(self, keys: Sequence[bytes], rows: np.ndarray) -> None:
        with self._lock:
            for k, row in zip(keys, rows, strict=True):
                self._rows[k] = np.array(row)  # a copy: a view would keep its whole batch alive
                self._rows.move_to_end(k)
            while len(self._rows) > self.max_items:
                self._rows.popitem(last=False)
