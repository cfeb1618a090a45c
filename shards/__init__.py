"""Sharded incremental FAISS indexes: growing and sealed segments, snapshots, and the fold of
the embeddings log into a shard (log_follower, readiness). Routing pins to shards is
`streams.routing`: the embeddings log partitions by it, and shards import it downward."""

from shards.exceptions import CorruptSnapshot, ShardError, SnapshotError, SnapshotNotFound
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
]
