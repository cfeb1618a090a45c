"""Errors raised by the encoder package."""

from conf.errors import PinstreamError


class EncoderError(PinstreamError):
    """The text encoder cannot load its model or encode the given input."""
