"""Model kinds by name (no if/elif chains): ``KINDS[name]`` is the kind's class."""

from __future__ import annotations

from collections.abc import Mapping

from .bi_encoder import BiEncoder
from .duo_cross_encoder import DuoCrossEncoder, MonoCrossEncoder
from .duo_t5 import DuoT5, MonoT5
from .errors import UnknownKindError
from .kind import Kind
from .prp import Prp
from .setwise import Setwise

KINDS: Mapping[str, type[Kind]] = {
    cls.name: cls for cls in (BiEncoder, DuoCrossEncoder, DuoT5, Prp, MonoCrossEncoder, MonoT5, Setwise)
}


def kind_class(name: str) -> type[Kind]:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKindError(f"unknown model kind {name!r}; known: {', '.join(sorted(KINDS))}") from None
