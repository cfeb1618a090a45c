"""Errors raised on purpose by the shards package."""

from conf.errors import PinstreamError


class ShardError(PinstreamError):
    """A shard index cannot do what was asked of it."""
