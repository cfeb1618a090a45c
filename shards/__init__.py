"""Sharded incremental FAISS indexes: growing and sealed segments, snapshots, and the fold of
the embeddings log into a shard (log_follower, readiness). Routing pins to shards is
`streams.routing`: the embeddings log partitions by it, and shards import it downward."""

from conf.config import import_faiss

# Before any module that imports faiss: without faiss-cpu or faiss-gpu, say which extra to install.
import_faiss()

from shards.exceptions import CorruptSnapshot, ShardError, SnapshotError, SnapshotNotFound  # noqa: E402
from shards.shard_index import ShardIndex  # noqa: E402
from shards.shard_state import PinInfo, ShardState  # noqa: E402

__all__ = [
    "CorruptSnapshot",
    "PinInfo",
    "ShardError",
    "ShardIndex",
    "ShardState",
    "SnapshotError",
    "SnapshotNotFound",
]
