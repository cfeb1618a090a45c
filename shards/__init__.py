"""Sharded incremental FAISS indexes: routing, growing and sealed segments, snapshots."""

from shards.exceptions import CorruptSnapshot, ShardError, SnapshotError, SnapshotNotFound
from shards.routing import pin_key, pin_keys, shard_of
from shards.shard_index import ShardIndex
from shards.shard_state import PinInfo, ShardState

__all__ = [
    "CorruptSnapshot",
    "PinInfo",
    "ShardError",
    "ShardIndex",
    "ShardState",
    "SnapshotError",
    "SnapshotNotFound",
    "pin_key",
    "pin_keys",
    "shard_of",
]
