"""Errors of the models layer. Every bad-input error is a ``ValueError`` subclass that names the problem."""

from __future__ import annotations


class ModelError(ValueError):
    """Base class of the models layer's input and configuration errors."""


class EmptyTextError(ModelError):
    """A query or passage is empty or only whitespace."""


class TextTooLongError(ModelError):
    """A query or passage is longer than the hard character limit (``max_chars``)."""


class UnknownModelError(ModelError):
    """A model name that is neither a folder, nor in the store, nor an embedded model."""


class UnknownKindError(ModelError):
    """A model kind that is not in the kind registry."""


class CorruptModelError(ModelError):
    """A model folder with a missing or unreadable ``model.onnx`` or ``manifest.json``."""


class MissingTokenizerError(CorruptModelError):
    """A model (or source) folder without usable tokenizer files (``tokenizer.json``)."""


class UnsupportedOperationError(ModelError):
    """An operation the model's kind does not offer (``embed`` on a cross-encoder, for example)."""


class ParityError(RuntimeError):
    """The exported ONNX graph does not reproduce the torch model within tolerance; nothing was written."""
