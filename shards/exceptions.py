"""Errors raised on purpose by the shards package."""

from conf.errors import PinstreamError


class ShardError(PinstreamError):
    """A shard index cannot do what was asked of it."""


class SnapshotError(ShardError):
    """A shard snapshot cannot be written or read."""


class CorruptSnapshot(SnapshotError):
    """A snapshot is partial, damaged or inconsistent: it is refused, never served."""


class SnapshotNotFound(SnapshotError):
    """No snapshot (or no good one) exists where one was asked for."""


class RouterError(ShardError):
    """A centroid router cannot be trained, written or loaded as asked."""


class RouterNotFound(RouterError):
    """No router was trained for this index generation."""


class CorruptRouter(RouterError):
    """A router artifact is partial or damaged: it is refused, never used to route."""
