"""Errors raised by the encoder package."""

from conf.errors import PinstreamError


class EncoderError(PinstreamError):
    """The text encoder cannot load its model or encode the given input."""


class RegistryError(EncoderError):
    """The model registry cannot do what was asked (storage error, bad version id, no history)."""


class ModelNotFound(RegistryError):
    """No complete model version of that id exists in the registry."""


class CorruptModel(RegistryError):
    """A model version fails its checksums or its manifest is damaged: it is never loaded."""
