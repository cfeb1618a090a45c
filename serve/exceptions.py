"""Errors raised by the serve package."""

from conf.errors import PinstreamError


class ServeError(PinstreamError):
    """Base class for every error of the serve package."""


class ShardNotReady(ServeError):
    """A shard replica did not catch up with its log partition in time; Serve starts another."""
