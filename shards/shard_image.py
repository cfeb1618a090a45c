"""A consistent copy of one shard's state, and its files in a snapshot.

Files: versions.npy (int64 [n, 2]: id, newest version, tombstones included), growing-ids.npy
and growing-vectors.npy, and per segment NNNN: segment-NNNN-ids.npy, segment-NNNN-dead.npy
(bool), then segment-NNNN-index.faiss (faiss.serialize_index) and segment-NNNN-raw.npy (lossy
indexes only) when sealed, or segment-NNNN-vectors.npy while it was still waiting to be sealed.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from conf.config import ShardsConfig
from shards.exceptions import CorruptSnapshot
from shards.raw_vectors import RawVectors, SpillDir
from shards.snapshot import Snapshot, publish_snapshot

KIND = "pinstream-shard"


@dataclass
class SegmentImage:
    """One segment: ids and dead mask by position, its index, raw vectors if lossy."""

    ids: np.ndarray
    dead: np.ndarray
    index: faiss.Index
    raw: RawVectors | None
    sealed: bool


@dataclass
class ShardImage:
    """What a snapshot holds of a shard; the arrays are copies, indexes are immutable."""

    config: ShardsConfig
    clock: int
    versions: np.ndarray
    growing_ids: np.ndarray
    growing_vectors: np.ndarray
    segments: list[SegmentImage]
    log_offsets: dict[int, int]


def save_image(root: str, image: ShardImage, extra_files: Mapping[str, bytes] | None = None) -> str:
    """Publish image (plus extra files) as a new snapshot under root; return its URI."""
    files: dict[str, bytes | Path] = {
        "versions.npy": _npy(image.versions),
        "growing-ids.npy": _npy(image.growing_ids),
        "growing-vectors.npy": _npy(image.growing_vectors),
    }
    segments = []
    for number, segment in enumerate(image.segments):
        name = f"segment-{number:04d}"
        files[f"{name}-ids.npy"] = _npy(segment.ids)
        files[f"{name}-dead.npy"] = _npy(segment.dead)
        if segment.sealed:
            files[f"{name}-index.faiss"] = faiss.serialize_index(segment.index).tobytes()
            if segment.raw is not None:
                files[f"{name}-raw.npy"] = segment.raw.path
        else:
            vectors = segment.index.reconstruct_n(0, segment.index.ntotal)
            files[f"{name}-vectors.npy"] = _npy(vectors)
        segments.append({"name": name, "sealed": segment.sealed, "raw": segment.raw is not None})
    extra = dict(extra_files or {})
    if set(extra) & set(files):
        raise ValueError(f"extra files clash with shard files: {sorted(set(extra) & set(files))}")
    files.update(extra)
    meta = {
        "kind": KIND,
        "config": dataclasses.asdict(image.config),
        "clock": image.clock,
        "log_offsets": {str(partition): offset for partition, offset in image.log_offsets.items()},
        "segments": segments,
        "extra_files": sorted(extra),
    }
    return publish_snapshot(root, files, meta)


def read_config(snapshot: Snapshot) -> ShardsConfig:
    """The shard config a snapshot was written with. Raises CorruptSnapshot."""
    try:
        if snapshot.meta.get("kind") != KIND:
            raise ValueError(f"kind is {snapshot.meta.get('kind')!r}, not {KIND!r}")
        return ShardsConfig(**snapshot.meta["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptSnapshot(f"{snapshot.uri}: bad shard config: {exc}") from exc


def read_image(snapshot: Snapshot, config: ShardsConfig, spill: SpillDir) -> ShardImage:
    """Read and check a shard image; raw vectors are copied into spill. Raises CorruptSnapshot."""
    meta = snapshot.meta
    try:
        clock = int(meta["clock"])
        offsets = {int(p): int(o) for p, o in meta["log_offsets"].items()}
        entries = [(e["name"], bool(e["sealed"]), bool(e["raw"])) for e in meta["segments"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptSnapshot(f"{snapshot.uri}: bad shard metadata: {exc}") from exc
    versions = _array(snapshot, "versions.npy", np.int64, (None, 2))
    growing_ids = _array(snapshot, "growing-ids.npy", np.int64, (None,))
    growing_shape = (len(growing_ids), config.dim)
    growing_vectors = _array(snapshot, "growing-vectors.npy", np.float32, growing_shape)
    segments = [_read_segment(snapshot, config, spill, *entry) for entry in entries]
    return ShardImage(config, clock, versions, growing_ids, growing_vectors, segments, offsets)


def _read_segment(
    snapshot: Snapshot, config: ShardsConfig, spill: SpillDir, name: str, sealed: bool, lossy: bool
) -> SegmentImage:
    ids = _array(snapshot, f"{name}-ids.npy", np.int64, (None,))
    dead = _array(snapshot, f"{name}-dead.npy", np.bool_, (len(ids),))
    raw = None
    if sealed:
        try:
            index = faiss.deserialize_index(
                np.frombuffer(snapshot.read_bytes(f"{name}-index.faiss"), dtype=np.uint8)
            )
        except RuntimeError as exc:
            raise CorruptSnapshot(f"{snapshot.uri}: {name} index cannot be read: {exc}") from exc
        if lossy:
            raw = RawVectors.fill(spill, lambda path: snapshot.copy_to(f"{name}-raw.npy", path))
            _check(snapshot, f"{name}-raw.npy", raw.array, np.float32, (len(ids), config.dim))
    else:
        vectors = _array(snapshot, f"{name}-vectors.npy", np.float32, (len(ids), config.dim))
        index = faiss.IndexFlat(config.dim, config.metric_type)
        index.add(vectors)
    if index.d != config.dim or index.ntotal != len(ids) or index.metric_type != config.metric_type:
        raise CorruptSnapshot(
            f"{snapshot.uri}: {name} index (d={index.d}, n={index.ntotal}) does not match "
            f"its {len(ids)} ids and the config"
        )
    return SegmentImage(ids, dead, index, raw, sealed)


def _array(snapshot: Snapshot, name: str, dtype: Any, shape: tuple[int | None, ...]) -> np.ndarray:
    array = snapshot.read_array(name)
    _check(snapshot, name, array, dtype, shape)
    return array


def _check(
    snapshot: Snapshot, name: str, array: np.ndarray, dtype: Any, shape: tuple[int | None, ...]
) -> None:
    fits = len(shape) == array.ndim and all(
        want is None or want == got for want, got in zip(shape, array.shape, strict=True)
    )
    if array.dtype != dtype or not fits:
        raise CorruptSnapshot(
            f"{snapshot.uri}: {name} has dtype {array.dtype} shape {array.shape}, "
            f"expected {np.dtype(dtype)} {shape}"
        )


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()
