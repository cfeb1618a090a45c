"""A generation's centroid router as a checksummed artifact, and the sample it is trained on.

The router of an index generation lives under `PinstreamConfig.router_root()` (keyed by the
generation's embeddings log, like its snapshots), published the way snapshots are
(shards/snapshot.py): files, then a manifest with the size and sha256 of each, then the
CURRENT pointer. Loading verifies every file; a damaged or partial router is refused with
CorruptRouter, and never replaced by an older one: the pins of the log were placed by the
newest, so routing by another would send queries to shards that do not hold their pins.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np

from conf.config import PinstreamConfig
from shards.exceptions import (
    CorruptRouter,
    CorruptSnapshot,
    RouterError,
    RouterNotFound,
    SnapshotError,
    SnapshotNotFound,
)
from shards.router import CentroidRouter
from shards.shard_index import ShardIndex
from shards.snapshot import list_snapshots, open_snapshot, publish_snapshot

log = logging.getLogger(__name__)

KIND = "centroid-router"
CENTROIDS_FILE = "centroids.npy"
GROUP_SHARDS_FILE = "group_shards.npy"
TRAIN_COMMAND = "pinstream router train"


def save_router(root: str, router: CentroidRouter, meta: dict[str, Any] | None = None) -> str:
    """Publish `router` under root (a path or URI) as its CURRENT router; return its URI."""
    files = {
        CENTROIDS_FILE: _npy_bytes(router.centroids),
        GROUP_SHARDS_FILE: _npy_bytes(router.group_shards),
    }
    body = {
        **(meta or {}),
        "kind": KIND,
        "num_shards": router.num_shards,
        "groups": router.groups,
        "dim": router.dim,
        "metric": router.metric,
    }
    try:
        return publish_snapshot(root, files, body)
    except SnapshotError as exc:
        raise RouterError(f"cannot write a router under {root}: {exc}") from exc


def has_router(root: str) -> bool:
    """Whether a router (good or not) was ever published under root."""
    return bool(list_snapshots(root))


def read_router(root: str, nprobe: int = 1) -> tuple[CentroidRouter, dict[str, Any]]:
    """The CURRENT router under root and its manifest metadata, every file verified."""
    try:
        snapshot = open_snapshot(root)
        meta = snapshot.meta
        if meta.get("kind") != KIND:
            raise CorruptRouter(f"{snapshot.uri} is a {meta.get('kind')!r}, not a {KIND}")
        centroids = snapshot.read_array(CENTROIDS_FILE)
        group_shards = snapshot.read_array(GROUP_SHARDS_FILE)
        router = CentroidRouter(
            centroids, group_shards, int(meta["num_shards"]), meta["metric"], nprobe
        )
    except SnapshotNotFound as exc:
        raise RouterNotFound(f"no centroid router under {root}") from exc
    except CorruptSnapshot as exc:
        raise CorruptRouter(
            f"the router under {root} is damaged and refused ({exc}); train it again with "
            f"`{TRAIN_COMMAND} --replace`, then rebuild the generation (its pins were placed by "
            "the damaged one)"
        ) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptRouter(f"the router under {root} is inconsistent: {exc}") from exc
    if (router.groups, router.dim) != (meta.get("groups"), meta.get("dim")):
        raise CorruptRouter(f"the router under {root} does not match its own manifest")
    return router, dict(meta)


def load_router(cfg: PinstreamConfig) -> CentroidRouter | None:
    """The router of cfg's generation in centroid mode (checked against cfg.shards), None in
    hash mode. RouterNotFound names the command that trains one."""
    shards = cfg.shards
    if shards.routing == "hash":
        return None
    root = cfg.router_root()
    try:
        router, _ = read_router(root)
    except RouterNotFound as exc:
        raise RouterNotFound(
            f"{exc}: shards.routing is centroid, so generation {cfg.model.generation} needs a "
            f"trained router first: `{TRAIN_COMMAND} --generation {cfg.model.generation}`"
        ) from exc
    trained = (router.num_shards, router.groups, router.dim, router.metric)
    wanted = (shards.count, shards.route_groups, shards.dim, shards.metric)
    if trained != wanted:
        raise RouterError(
            f"the router under {root} was trained for (shards, groups, dim, metric) = "
            f"{trained}, this config says {wanted}: pins of this generation were placed by it, "
            "so change the config back, or build a new generation with a router of its own"
        )
    router.nprobe = shards.route_nprobe  # <= route_groups, the config checked it
    return router


def sample_snapshots(cfg: PinstreamConfig, n: int, seed: int = 0) -> np.ndarray:
    """Up to n live vectors of cfg's generation, an equal share from each shard's newest good
    snapshot (one shard in memory at a time). RouterError if no shard has a snapshot."""
    share = -(-n // cfg.shards.count)
    parts = []
    for shard in range(cfg.shards.count):
        try:
            index = ShardIndex.load_latest(cfg.snapshot_root(shard))
        except SnapshotNotFound:
            log.warning("router sample: shard %d has no snapshot, left out", shard)
            continue
        try:
            parts.append(index.sample_vectors(share, seed + shard))
        finally:
            index.close()
    if not parts:
        raise RouterError(
            f"no shard of generation {cfg.model.generation} has a snapshot under "
            f"{cfg.storage.root}: seal them first (`pinstream seal`) or pass --vectors FILE"
        )
    return np.concatenate(parts)[:n]


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
