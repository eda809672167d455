"""Lazy registry entries: a method is imported from its module on first lookup, not at start-up.

The method tables of :mod:`.registry` list every name with the module that defines it, so the names are
known (``rerank --help``, validation of options) without importing the modules and what they pull in
(``scipy.linalg`` for Bradley-Terry and HodgeRank, ``scipy.special`` for the active sampler).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any


class LazyTable(Mapping[str, Callable[..., Any]]):
    """Method name -> function, where each entry is ``"module:attribute"`` inside ``package``.

    Iteration order and membership come from the entries alone; ``table[name]`` imports the module once.
    """

    def __init__(self, package: str, entries: Mapping[str, str]) -> None:
        self._package = package
        self._entries = dict(entries)
        self._loaded: dict[str, Callable[..., Any]] = {}

    def __getitem__(self, name: str) -> Callable[..., Any]:
        found = self._loaded.get(name)
        if found is None:
            found = load(self._package, self._entries[name])  # KeyError for an unknown name, as a dict
            self._loaded[name] = found
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def load(package: str, target: str) -> Any:
    """Import ``package.module`` and return its ``attribute`` for ``target = "module:attribute"``.

    Importing a submodule binds its name on the package (``package.borda`` = the module ``borda``); where
    the function has the module's name, the package attribute is bound to the function instead, as an
    eager ``from .borda import borda`` in the package would have done.
    """
    module, _, attribute = target.partition(":")
    imported = importlib.import_module(f"{package}.{module}")
    value = getattr(imported, attribute)
    parent = sys.modules[package]
    if vars(parent).get(attribute) is imported:
        setattr(parent, attribute, value)
    return value


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that imports each exported name from its module on first use."""

    def __getattr__(name: str) -> Any:  # noqa: N807
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return load(package, exports[name])

    return __getattr__
