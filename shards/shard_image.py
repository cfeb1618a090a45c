"""A consistent copy of one shard's state, and its files in a snapshot.

Files:
- keys-ids.npy, keys-versions.npy, keys-owners.npy, keys-ages.npy: int64 [n] each, sorted by
  id (newest version, owner fingerprint, tombstone age or -1 for a live id); one file per
  column, so that a reader's columns are the bytes it read, not copies of them;
- the growing segment's live rows: growing-ids.npy, growing-tags.npy, growing-vectors.npy,
  growing-payload.arrow;
- per segment NNNN: segment-NNNN-ids.npy, -tags.npy, -dead.npy (bool) and -payload.arrow,
  then -index.faiss (a FAISS index file) and -raw.npy (lossy indexes only) when sealed, or
  -vectors.npy while it was still waiting to be sealed.
Payload files exist only for an index with a payload schema.

Sealed segments are streamed into the snapshot from their spill files and read back into a
spill directory, mapped, not loaded into memory. A reader that already holds a segment with
the same content (spill.segment_digest) shares it instead of reading it again, so a replica
that swaps in a newer snapshot grows by the segments it did not hold only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa

from conf.config import ShardsConfig
from shards.exceptions import CorruptSnapshot
from shards.segments import SealedSegment
from shards.snapshot import Snapshot, publish_snapshot
from shards.spill import (
    RawVectors,
    SpillDir,
    SpillFile,
    ipc_bytes,
    map_index,
    map_payload,
    npy_bytes,
    segment_digest,
)

KIND = "pinstream-shard"
KEY_COLUMNS = ("ids", "versions", "owners", "ages")
LAYOUT = 2  # version of this file layout; snapshots of another are refused


@dataclass
class GrowingImage:
    """The growing segment's live rows, copied."""

    ids: np.ndarray
    tags: np.ndarray
    vectors: np.ndarray
    payload: pa.Table | None


@dataclass
class SegmentImage:
    """A frozen or sealed segment (immutable but for its dead mask) and a copy of the mask."""

    segment: SealedSegment
    dead: np.ndarray


@dataclass
class ShardImage:
    """What a snapshot holds of a shard; arrays are copies, segments immutable."""

    config: ShardsConfig
    clock: int
    keys: dict[str, np.ndarray]  # KEY_COLUMNS, int64 [n] each
    growing: GrowingImage
    segments: list[SegmentImage]
    log_offsets: dict[int, int]
    payload_schema: pa.Schema | None


def save_image(root: str, image: ShardImage, extra_files: Mapping[str, bytes] | None = None) -> str:
    """Publish image (plus extra files) as a new snapshot under root; return its URI."""
    has_payload = image.payload_schema is not None
    files: dict[str, bytes | Path] = {
        **{f"keys-{name}.npy": npy_bytes(image.keys[name]) for name in KEY_COLUMNS},
        "growing-ids.npy": npy_bytes(image.growing.ids),
        "growing-tags.npy": npy_bytes(image.growing.tags),
        "growing-vectors.npy": npy_bytes(image.growing.vectors),
    }
    if has_payload:
        assert image.growing.payload is not None and image.payload_schema is not None
        files["growing-payload.arrow"] = ipc_bytes(image.growing.payload.cast(image.payload_schema))
    segments = []
    for number, part in enumerate(image.segments):
        name, segment = f"segment-{number:04d}", part.segment
        files[f"{name}-ids.npy"] = npy_bytes(segment.ids)
        files[f"{name}-tags.npy"] = npy_bytes(segment.tags)
        files[f"{name}-dead.npy"] = npy_bytes(part.dead)
        if segment.sealed:
            files[f"{name}-index.faiss"] = segment.files["index"].path
            if segment.raw is not None:
                files[f"{name}-raw.npy"] = segment.raw.file.path
            if has_payload:
                files[f"{name}-payload.arrow"] = segment.files["payload"].path
        else:
            vectors = segment.index.reconstruct_n(0, segment.index.ntotal)
            files[f"{name}-vectors.npy"] = npy_bytes(vectors)
            if has_payload:
                assert segment.payload is not None and image.payload_schema is not None
                files[f"{name}-payload.arrow"] = ipc_bytes(segment.payload)
        segments.append({"name": name, "sealed": segment.sealed, "raw": segment.raw is not None})
    extra = dict(extra_files or {})
    if set(extra) & set(files):
        raise ValueError(f"extra files clash with shard files: {sorted(set(extra) & set(files))}")
    files.update(extra)
    meta = {
        "kind": KIND,
        "layout": LAYOUT,
        "config": snapshot_config(image.config),
        "clock": image.clock,
        "log_offsets": {str(partition): offset for partition, offset in image.log_offsets.items()},
        "segments": segments,
        "payload": has_payload,
        "extra_files": sorted(extra),
    }
    return publish_snapshot(root, files, meta)


def snapshot_config(config: ShardsConfig) -> dict[str, Any]:
    """The shard config as a snapshot records it: without search_device, which is where a
    process searches, not what the shard holds (a loading replica brings its own)."""
    fields = dataclasses.asdict(config)
    del fields["search_device"]
    return fields


def read_config(snapshot: Snapshot) -> ShardsConfig:
    """The shard config a snapshot was written with. Raises CorruptSnapshot."""
    try:
        if snapshot.meta.get("kind") != KIND:
            raise ValueError(f"kind is {snapshot.meta.get('kind')!r}, not {KIND!r}")
        if snapshot.meta.get("layout") != LAYOUT:
            raise ValueError(
                f"file layout {snapshot.meta.get('layout')!r} is not {LAYOUT}: written by "
                "another pinstream version (re-ingest, or restore with that version)"
            )
        return ShardsConfig(**snapshot.meta["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptSnapshot(f"{snapshot.uri}: bad shard config: {exc}") from exc


def read_image(
    snapshot: Snapshot,
    config: ShardsConfig,
    spill: SpillDir,
    shared: Mapping[str, SealedSegment] | None = None,
) -> ShardImage:
    """Read and check a shard image; sealed segments are copied into spill and mapped, or
    shared from `shared` (by digest) when already held. Raises CorruptSnapshot."""
    meta = snapshot.meta
    try:
        clock = int(meta["clock"])
        offsets = {int(p): int(o) for p, o in meta["log_offsets"].items()}
        entries = [(e["name"], bool(e["sealed"]), bool(e["raw"])) for e in meta["segments"]]
        has_payload = bool(meta["payload"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptSnapshot(f"{snapshot.uri}: bad shard metadata: {exc}") from exc
    keys = {name: _array(snapshot, f"keys-{name}.npy", np.int64, (None,)) for name in KEY_COLUMNS}
    if len({len(column) for column in keys.values()}) != 1:
        raise CorruptSnapshot(f"{snapshot.uri}: the key columns differ in length")
    ids = _array(snapshot, "growing-ids.npy", np.int64, (None,))
    tags = _array(snapshot, "growing-tags.npy", np.int32, (len(ids),))
    vectors = _array(snapshot, "growing-vectors.npy", np.float32, (len(ids), config.dim))
    schema, payload = None, None
    if has_payload:
        payload = _payload(snapshot, "growing-payload.arrow", len(ids), None)
        schema = payload.schema
    reader = _SegmentReader(snapshot, config, spill, dict(shared or {}), schema)
    return ShardImage(
        config,
        clock,
        keys,
        GrowingImage(ids, tags, vectors, payload),
        [reader.read(*entry) for entry in entries],
        offsets,
        schema,
    )


@dataclass
class _SegmentReader:
    snapshot: Snapshot
    config: ShardsConfig
    spill: SpillDir
    shared: dict[str, SealedSegment]
    schema: pa.Schema | None

    def read(self, name: str, sealed: bool, lossy: bool) -> SegmentImage:
        snapshot, config = self.snapshot, self.config
        if sealed:
            digest = segment_digest(
                snapshot.sha256(f"{name}-index.faiss"), snapshot.sha256(f"{name}-ids.npy")
            )
            held = self.shared.get(digest)
            if held is not None:  # the same segment: only its dead mask is new
                dead = _array(snapshot, f"{name}-dead.npy", np.bool_, (held.n,))
                return SegmentImage(held.sharing(dead.copy()), dead)
        ids = _array(snapshot, f"{name}-ids.npy", np.int64, (None,))
        tags = _array(snapshot, f"{name}-tags.npy", np.int32, (len(ids),))
        dead = _array(snapshot, f"{name}-dead.npy", np.bool_, (len(ids),))
        if not sealed:
            vectors = _array(snapshot, f"{name}-vectors.npy", np.float32, (len(ids), config.dim))
            flat = faiss.IndexFlat(config.dim, config.metric_type)
            flat.add(vectors)
            payload = None
            if self.schema is not None:
                payload = _payload(snapshot, f"{name}-payload.arrow", len(ids), self.schema)
            segment = SealedSegment(ids, tags, flat, None, payload, sealed=False, dead=dead)
            return SegmentImage(segment, dead)
        files: dict[str, SpillFile] = {}
        files["index"] = self.spill.fill(
            ".faiss", lambda path: snapshot.copy_to(f"{name}-index.faiss", path)
        )
        try:
            index = map_index(files["index"])
        except RuntimeError as exc:
            raise CorruptSnapshot(f"{snapshot.uri}: {name} index cannot be read: {exc}") from exc
        raw = None
        if lossy:
            files["raw"] = self.spill.fill(
                ".npy", lambda path: snapshot.copy_to(f"{name}-raw.npy", path)
            )
            raw = RawVectors(files["raw"])
            _check(snapshot, f"{name}-raw.npy", raw.array, np.float32, (len(ids), config.dim))
        payload = None
        if self.schema is not None:
            files["payload"] = self.spill.fill(
                ".arrow", lambda path: snapshot.copy_to(f"{name}-payload.arrow", path)
            )
            payload = _mapped_payload(
                snapshot, f"{name}-payload.arrow", files, len(ids), self.schema
            )
        if (
            index.d != config.dim
            or index.ntotal != len(ids)
            or index.metric_type != config.metric_type
        ):
            raise CorruptSnapshot(
                f"{snapshot.uri}: {name} index (d={index.d}, n={index.ntotal}) does not match "
                f"its {len(ids)} ids and the config"
            )
        segment = SealedSegment(
            ids, tags, index, raw, payload, sealed=True, dead=dead.copy(), files=files
        )
        segment.digest = digest
        return SegmentImage(segment, dead)


def _mapped_payload(
    snapshot: Snapshot, name: str, files: dict[str, SpillFile], rows: int, schema: pa.Schema
) -> pa.Table:
    try:
        table = map_payload(files["payload"])
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorruptSnapshot(f"{snapshot.uri}: {name} cannot be read: {exc}") from exc
    _check_table(snapshot, name, table, rows, schema)
    return table


def _payload(snapshot: Snapshot, name: str, rows: int, schema: pa.Schema | None) -> pa.Table:
    try:
        table = pa.ipc.open_file(pa.BufferReader(snapshot.read_bytes(name))).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorruptSnapshot(f"{snapshot.uri}: {name} cannot be read: {exc}") from exc
    _check_table(snapshot, name, table, rows, schema)
    return table


def _check_table(
    snapshot: Snapshot, name: str, table: pa.Table, rows: int, schema: pa.Schema | None
) -> None:
    if table.num_rows != rows or (schema is not None and not table.schema.equals(schema)):
        raise CorruptSnapshot(
            f"{snapshot.uri}: {name} has {table.num_rows} rows of {table.schema}, expected {rows}"
        )


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
