"""Offline maintenance of a shard's snapshots, for `pinstream seal` and `pinstream compact`.

Each function loads the newest good snapshot under a root URI, does its work, publishes the
result as a new snapshot with the same log offsets (plus any extra files, such as the pins of
a ShardState), and prunes old snapshots. Run it while no other process writes snapshots under
that root; replicas keep serving and pick up the new snapshot when they reload.
"""

import os
from collections.abc import Callable
from typing import Any

from shards.shard_image import save_image
from shards.shard_index import ShardIndex
from shards.snapshot import Snapshot, first_good, prune_snapshots


def seal_snapshot(
    uri: str, keep: int = 3, spill_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Seal the growing segment of the newest snapshot under uri; publish the result."""

    def work(index: ShardIndex) -> dict[str, Any]:
        growing = index.stats()["growing"]
        index.seal()
        return {"sealed_vectors": growing}

    return _maintain(uri, work, keep, spill_dir)


def compact_snapshot(
    uri: str, keep: int = 3, spill_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Seal, then merge all sealed segments of the newest snapshot and drop dead vectors."""

    def work(index: ShardIndex) -> dict[str, Any]:
        index.seal()
        done = index.compact()
        return {"merged_segments": done["segments"], "dropped_vectors": done["dropped"]}

    return _maintain(uri, work, keep, spill_dir)


def _maintain(
    uri: str,
    work: Callable[[ShardIndex], dict[str, Any]],
    keep: int,
    spill_dir: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    def load(snapshot: Snapshot) -> tuple[str, ShardIndex, dict[str, bytes]]:
        index = ShardIndex.from_snapshot(snapshot, spill_dir)
        extra = {name: snapshot.read_bytes(name) for name in snapshot.meta.get("extra_files", [])}
        return snapshot.uri, index, extra

    source, index, extra = first_good(uri, load)
    try:
        result = work(index)
        written = save_image(uri, index.image(), extra)
        stats = index.stats()
    finally:
        index.close()
    return {
        "source": source,
        "snapshot": written,
        **result,
        "live": stats["live"],
        "segments": len(stats["segments"]),
        "log_offsets": stats["log_offsets"],
        "pruned": prune_snapshots(uri, keep),
    }
