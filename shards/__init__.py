"""Sharded incremental FAISS indexes: routing pin → shard, versioned upserts and deletes."""

from shards.exceptions import ShardError
from shards.routing import pin_key, pin_keys, shard_of
from shards.shard_index import ShardConfig, ShardIndex
from shards.shard_state import PinInfo, ShardState

__all__ = [
    "PinInfo",
    "ShardConfig",
    "ShardError",
    "ShardIndex",
    "ShardState",
    "pin_key",
    "pin_keys",
    "shard_of",
]
