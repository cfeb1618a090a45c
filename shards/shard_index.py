"""One shard's vector index: versioned upserts and deletes over growing and sealed segments.

Writes go to an exact growing segment. When it holds `growing_limit` vectors it is frozen
(still searched exactly) and a background worker seals it: builds the configured FAISS index
from its live vectors, then swaps it in. An id is live in at most one segment; replacing or
deleting an id held by a sealed segment marks its position dead there, and compaction
rebuilds sealed segments without their dead vectors once enough of them are dead.

Per id, the newest version seen (live or deleted), the owner fingerprint of its pin and where
its vector lives are rows of a KeyTable (numpy columns, shards/key_table.py): no Python object
per vector. A deleted id's row is its tombstone: it makes an older upsert that arrives later
lose. Tombstones are pruned when a snapshot is saved after an earlier snapshot held them:
replays start from that earlier snapshot's log offsets or later, past the delete, so memory
does not grow with the number of deletes ever made.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self

import faiss
import numpy as np
import pyarrow as pa

from conf.config import ShardsConfig, higher_is_better
from shards.arrays import (
    RESTORED_VERSION,
    check_ids,
    check_int_array,
    check_matrix,
    check_versions,
)
from shards.exceptions import CorruptSnapshot
from shards.key_table import MISSING, TOMBSTONE, KeyTable
from shards.search_device import SearchDevice, search_device
from shards.segments import GrowingSegment, SealedSegment, Segment, Selection
from shards.shard_image import (
    GrowingImage,
    SegmentImage,
    ShardImage,
    read_config,
    read_image,
    save_image,
)
from shards.snapshot import LoadsSnapshots, Snapshot
from shards.spill import SpillDir
from shards.top_k import merge_top_k

__all__ = ["ShardIndex", "ShardsConfig", "Where"]

log = logging.getLogger(__name__)

# Vectors scored per block by exact_search: bounds its memory whatever the shard's size.
EXACT_BLOCK = 16_384
RESTORE_BLOCK = 65_536
_NO_IDS = np.empty(0, dtype=np.int64)
_INT64_RANGE = (int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max))


@dataclass(frozen=True)
class Where:
    """A search filter: vectors whose tag is in `tags` (None = any), ids not in `exclude`."""

    tags: np.ndarray | None = None
    exclude: np.ndarray = field(default_factory=lambda: _NO_IDS)

    @classmethod
    def of(cls, tags: Iterable[int] | None = None, exclude: Iterable[int] = ()) -> Where:
        """Build from any iterables of ints."""
        codes = None if tags is None else np.unique(np.fromiter(tags, dtype=np.int64))
        return cls(codes, np.unique(np.fromiter(exclude, dtype=np.int64)))


class ShardIndex(LoadsSnapshots):
    """A shard's index: versioned upserts and deletes, top-k search over all segments.

    Thread-safe. spill_dir is where sealed segments keep their files (a private temporary
    directory when None). payload_schema: the Arrow schema of the per-vector payload that
    upserts carry (None: no payload). device: where sealed segments are searched (None: the
    one config.search_device names; shards/search_device.py).
    """

    def __init__(
        self,
        config: ShardsConfig,
        spill_dir: str | os.PathLike[str] | None = None,
        payload_schema: pa.Schema | None = None,
        device: SearchDevice | None = None,
    ) -> None:
        self._config = config
        self._device = search_device(config.search_device) if device is None else device
        self._payload_schema = payload_schema
        self._lock = threading.RLock()
        self._spill = SpillDir(spill_dir)
        self._keys = KeyTable()
        self._slots: dict[int, Segment] = {}
        self._next_slot = 0
        self._growing = self._new_growing()
        self._segments: list[SealedSegment] = []
        # Newest version seen for any id; writes without versions are stamped above it.
        self._clock = -1
        self._log_offsets: dict[int, int] = {}
        self._worker: ThreadPoolExecutor | None = None
        self._pending = 0  # background tasks queued or running
        self._idle = threading.Condition(self._lock)
        self._seals: dict[SealedSegment, Future[dict[str, int]]] = {}
        self._compaction: Future[dict[str, int]] | None = None
        self._build_s = 0.0  # time spent building sealed segments (seals and compactions)

    @property
    def config(self) -> ShardsConfig:
        """The config this shard was built with."""
        return self._config

    @property
    def payload_schema(self) -> pa.Schema | None:
        """The schema of the payload upserts carry, or None."""
        return self._payload_schema

    @property
    def log_offsets(self) -> dict[int, int]:
        """Next embeddings-log offset per partition that this state does not cover yet."""
        with self._lock:
            return dict(self._log_offsets)

    def __len__(self) -> int:
        with self._lock:
            return self._growing.n_live + sum(s.n_live for s in self._segments)

    def __contains__(self, key: object) -> bool:
        """True when key is a live id."""
        if not isinstance(key, int | np.integer) or isinstance(key, bool):
            return False
        with self._lock:
            slots = self._keys.lookup("slots", np.array([key], dtype=np.int64), TOMBSTONE)
            return bool(slots[0] >= 0)

    def upsert(
        self,
        ids: Any,
        vectors: Any,
        versions: Any = None,
        *,
        owners: Any = None,
        tags: Any = None,
        payload: pa.Table | None = None,
    ) -> int:
        """Insert or replace vectors by id; return how many rows were applied.

        A row is ignored when its version is not newer than the newest seen for its id.
        versions=None stamps rows newer than anything seen, so they always apply. owners
        (int64 fingerprints of who holds each id), tags (int32 >= 0, what filters select on)
        and payload (a table of payload_schema, one row per id) default to 0, 0 and none.
        """
        keys = check_ids(ids)
        n = keys.shape[0]
        matrix = check_matrix(vectors, self._config.dim, "vectors")
        if matrix.shape[0] != n:
            raise ValueError(
                f"ids and vectors must have the same length, got {n} and {len(matrix)}"
            )
        given_versions = check_versions(versions, n)
        owner_values = _int_column(owners, n, "owners", np.int64, *_INT64_RANGE)
        tag_values = _int_column(tags, n, "tags", np.int32, 0, np.iinfo(np.int32).max)
        self._check_payload(payload, n)
        with self._lock:
            stamped = self._stamp(given_versions, n)
            rows = self._accepted_rows(keys, stamped)
            if rows.size == 0:
                return 0
            new_keys = keys[rows]
            self._retire(new_keys)
            self._append(
                new_keys,
                matrix[rows],
                stamped[rows],
                owner_values[rows],
                tag_values[rows],
                None if payload is None else payload.take(pa.array(rows)),
            )
            self._maybe_compact()
            return int(rows.size)

    def delete(self, ids: Any, versions: Any = None, *, owners: Any = None) -> int:
        """Delete ids, leaving tombstone versions; return how many rows were applied.

        Versions follow the same last-writer-wins rule as upsert; deleting an id that is not
        live still records its tombstone version.
        """
        keys = check_ids(ids)
        given_versions = check_versions(versions, keys.shape[0])
        owner_values = _int_column(owners, keys.shape[0], "owners", np.int64, *_INT64_RANGE)
        with self._lock:
            stamped = self._stamp(given_versions, keys.shape[0])
            rows = self._accepted_rows(keys, stamped)
            if rows.size == 0:
                return 0
            gone_keys = keys[rows]
            self._retire(gone_keys)
            self._keys.put(
                gone_keys,
                versions=stamped[rows],
                owners=owner_values[rows],
                slots=TOMBSTONE,
                positions=0,  # a tombstone's age: snapshots that held it so far
            )
            self._maybe_compact()
            return int(rows.size)

    def search(
        self, queries: Any, k: int, where: Where | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores float32[m, k], ids int64[m, k]), best first, padded with id -1.

        The m queries are searched together: one FAISS call per segment (on the search device
        where it holds the segment), the segments' results merged. Scores are inner products
        ("ip", padding -inf) or squared L2 distances ("l2", +inf); sealed segments with lossy
        indexes and no reranking give approximate scores. With `where`, only vectors that
        pass it; the work stays bounded by the matches (segments).
        """
        k = _check_k(k)
        matrix = check_matrix(queries, self._config.dim, "queries")
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        if matrix.shape[0]:
            with self._lock:
                for segment, selection in self._selections(where):
                    scores, positions = segment.search(
                        matrix, k, self._config, selection, self._device
                    )
                    parts.append((scores, _ids_at(segment, positions)))
        return self._merge(parts, matrix.shape[0], k)

    def exact_search(
        self, queries: Any, k: int, where: Where | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like search, by brute force over every live vector: the oracle of recall checks.

        Streams blocks of EXACT_BLOCK vectors (raw copies from disk for lossy segments) into
        a result heap; the shard lock is held only to pick the positions, so writes go on.
        """
        k = _check_k(k)
        matrix = check_matrix(queries, self._config.dim, "queries")
        with self._lock:
            picked = [(s, s.selected(sel or Selection())) for s, sel in self._selections(where)]
            growing = [(s, s.vectors_at(p), s.ids[p]) for s, p in picked if s is self._growing]
        heap = faiss.ResultHeap(matrix.shape[0], k, keep_max=higher_is_better(self._config.metric))
        blocks = [
            (vectors[start : start + EXACT_BLOCK], ids[start : start + EXACT_BLOCK])
            for _, vectors, ids in growing
            for start in range(0, len(ids), EXACT_BLOCK)
        ]
        for vectors, ids in blocks:
            self._score_block(heap, matrix, vectors, ids, k)
        for segment, positions in picked:
            if segment is self._growing:
                continue
            for start in range(0, positions.size, EXACT_BLOCK):
                block = positions[start : start + EXACT_BLOCK]
                self._score_block(heap, matrix, segment.vectors_at(block), segment.ids[block], k)
        heap.finalize()
        return self._merge([(heap.D, heap.I)], matrix.shape[0], k)

    def vector(self, key: int) -> np.ndarray | None:
        """Return a copy of the stored vector of a live id, or None."""
        with self._lock:
            located = self._locate(np.array([key], dtype=np.int64))
            if located is None:
                return None
            segment, positions = located
            return segment.vectors_at(positions)[0]

    def version(self, key: int) -> int | None:
        """Return the newest version seen for an id (live or deleted), or None if never seen."""
        with self._lock:
            handles = self._keys.handles(np.array([key], dtype=np.int64))
            if handles[0] == MISSING:
                return None
            return int(self._keys.get("versions", handles, 0)[0])

    def owners(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each id: whether it has a row (live or tombstone), and its owner fingerprint."""
        with self._lock:
            handles = self._keys.handles(keys)
            return handles != MISSING, self._keys.get("owners", handles, 0)

    def payload(self, keys: np.ndarray) -> tuple[np.ndarray, pa.Table]:
        """Which ids are live, and the payload rows of those, in their order."""
        if self._payload_schema is None:
            raise ValueError("this index keeps no payload")
        with self._lock:
            handles = self._keys.handles(keys)
            slots = self._keys.get("slots", handles, TOMBSTONE)
            positions = self._keys.get("positions", handles, 0).astype(np.int64)
            live = slots >= 0
            held = np.unique(slots[live]).tolist()
            if len(held) == 1:  # the common case: one segment holds them all, in asked order
                return live, self._slots[held[0]].payload_at(positions[live])
            parts, order = [], []
            for slot in held:
                rows = np.flatnonzero(slots == slot)
                parts.append(self._slots[slot].payload_at(positions[rows]))
                order.append(rows)
        if not parts:
            return live, self._payload_schema.empty_table()
        # Rows come grouped by segment; put them back in the order the ids were asked in.
        grouped = np.concatenate(order)
        rank = np.empty(keys.shape[0], dtype=np.int64)
        rank[grouped] = np.arange(grouped.size)
        return live, pa.concat_tables(parts).take(pa.array(rank[live]))

    def live_payload(self) -> pa.Table:
        """Every live vector's payload (for audits and tests: O(live))."""
        if self._payload_schema is None:
            raise ValueError("this index keeps no payload")
        with self._lock:
            parts = [
                s.payload_at(np.flatnonzero(~s.dead))
                for s in [self._growing, *self._segments]
                if s.n_live
            ]
        return pa.concat_tables(parts) if parts else self._payload_schema.empty_table()

    def sample_vectors(self, n: int, seed: int = 0) -> np.ndarray:
        """Up to n live vectors, drawn uniformly without replacement (seeded): float32 [m, d]."""
        with self._lock:
            segments = [s for s in [self._growing, *self._segments] if s.n_live]
            live = [np.flatnonzero(~s.dead) for s in segments]
            bounds = np.cumsum([0, *(positions.size for positions in live)])
            total = int(bounds[-1])
            chosen = np.sort(
                np.random.default_rng(seed).choice(total, size=min(n, total), replace=False)
            )
            parts = [
                segment.vectors_at(positions[chosen[(chosen >= low) & (chosen < high)] - low])
                for segment, positions, low, high in zip(
                    segments, live, bounds[:-1], bounds[1:], strict=True
                )
            ]
        parts = [part for part in parts if part.shape[0]]
        if not parts:
            return np.empty((0, self._config.dim), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def seal(self) -> None:
        """Seal the growing segment and any segment waiting to be sealed; return when done.

        Searches stay correct throughout: a segment is searched exactly until its sealed
        index replaces it. Raises the build's error if a segment cannot be sealed.
        """
        with self._lock:
            if len(self._growing):
                self._freeze_growing()
            for segment in self._segments:
                future = self._seals.get(segment)
                if not segment.sealed and (future is None or _failed(future)):
                    self._queue_seal(segment)
            futures = [self._seals[s] for s in self._segments if not s.sealed]
        for future in futures:
            future.result()

    def compact(self) -> dict[str, int]:
        """Merge all sealed segments into one without dead vectors; return what it did.

        Runs on the background worker, after any seal queued before it.
        """
        return self._submit(self._compact).result()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no seal or compaction is queued or running; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Let queued seals and compactions finish, then stop the background worker.

        The index stays usable; a later write or seal starts a worker again.
        """
        while True:  # a finishing seal may queue a compaction on a fresh worker
            with self._lock:
                worker, self._worker = self._worker, None
            if worker is None:
                return
            worker.shutdown(wait=True)

    def stats(self) -> dict[str, Any]:
        """Live count, segment sizes, dead fraction and bookkeeping, for health and tests."""
        with self._lock:
            sealed = [s for s in self._segments if s.sealed]
            stored = sum(s.n for s in sealed)
            return {
                "live": len(self),
                "growing": len(self._growing),
                "ids": len(self._keys),
                "tombstones": self._keys.count(lambda c: c["slots"] == TOMBSTONE),
                "key_table_bytes": self._keys.nbytes,
                "segments": [
                    {
                        "vectors": s.n,
                        "dead": s.n_dead,
                        "sealed": s.sealed,
                        "index": type(faiss.downcast_index(s.index)).__name__,
                        "raw_on_disk": s.raw is not None,
                        "on_device": self._device.holds(s.index),
                    }
                    for s in self._segments
                ],
                "dead_fraction": sum(s.n_dead for s in sealed) / stored if stored else 0.0,
                "rows_examined": sum(s.rows_examined for s in [self._growing, *self._segments]),
                "build_s": self._build_s,
                "search_device": self._device.name,
                "device_searches": self._device.searches,
                "log_offsets": dict(self._log_offsets),
            }

    def save(self, uri: str, log_offsets: dict[int, int] | None = None) -> str:
        """Publish a snapshot under uri (a local path, s3://, gs://); return its URI.

        log_offsets: per embeddings-log partition, the next offset this state does not cover.
        None keeps the offsets this index was loaded with (replaying more log is harmless).
        Tombstones that an earlier save already held are pruned first (module docstring).
        """
        with self._lock:
            self.prune_tombstones()
            image = self.image(log_offsets)
        return save_image(uri, image)

    @classmethod
    def from_snapshot(
        cls,
        snapshot: Snapshot,
        spill_dir: str | os.PathLike[str] | None = None,
        share_with: ShardIndex | None = None,
        device: SearchDevice | None = None,
    ) -> Self:
        """Build an index from an opened snapshot. share_with: an index whose sealed segments
        this one reuses where the snapshot holds the same ones (a replica's swap), and whose
        search device it takes (with the device copies of those segments) unless device is
        given; with neither, search_device auto."""
        config = read_config(snapshot)
        shared = {} if share_with is None else share_with._sealed_by_digest()
        image = read_image(snapshot, config, SpillDir(spill_dir), shared)
        if device is None and share_with is not None:
            device = share_with._device
        index = cls(config, spill_dir, image.payload_schema, device)
        index._restore(image, snapshot.uri)
        return index

    def image(self, log_offsets: dict[int, int] | None = None) -> ShardImage:
        """A consistent copy of this shard's state (what save writes).

        log_offsets, when given, become this index's offsets (see save).
        """
        offsets = None if log_offsets is None else _check_offsets(log_offsets)
        with self._lock:
            if offsets is not None:
                self._log_offsets = offsets
            columns = self._keys.columns()
            ages = np.where(columns["slots"] == TOMBSTONE, columns["positions"], -1).astype(
                np.int64
            )
            growing = self._growing
            live = np.flatnonzero(~growing.dead)
            return ShardImage(
                config=self._config,
                clock=self._clock,
                keys={
                    "ids": columns["ids"],
                    "versions": columns["versions"],
                    "owners": columns["owners"],
                    "ages": ages,
                },
                growing=GrowingImage(
                    ids=growing.ids[live].copy(),
                    tags=growing.tags[live].copy(),
                    vectors=growing.vectors_at(live),
                    payload=None if self._payload_schema is None else growing.payload_at(live),
                ),
                segments=[SegmentImage(s, s.dead.copy()) for s in self._segments],
                log_offsets=dict(self._log_offsets),
                payload_schema=self._payload_schema,
            )

    def _restore(self, image: ShardImage, uri: str) -> None:
        """Fill this new, empty index from an image; refuse an inconsistent one."""
        try:
            self._clock = image.clock
            self._log_offsets = dict(image.log_offsets)
            grown = image.growing
            if len(grown.ids) > self._config.growing_limit:
                raise ValueError("the growing segment is larger than growing_limit")
            if len(grown.ids):
                self._growing.add(grown.ids, grown.vectors, grown.tags, grown.payload)
            for part in image.segments:
                segment = part.segment
                segment.slot = self._take_slot(segment)
                self._segments.append(segment)
            self._keys = _key_table(image.keys, [self._growing, *self._segments])
        except (ValueError, KeyError) as exc:
            raise CorruptSnapshot(f"{uri}: inconsistent shard state: {exc}") from exc
        with self._lock:
            for segment in self._segments:
                if not segment.sealed:
                    self._queue_seal(segment)

    def _sealed_by_digest(self) -> dict[str, SealedSegment]:
        with self._lock:
            return {s.digest: s for s in self._segments if s.digest is not None}

    def _selections(self, where: Where | None) -> list[tuple[Segment, Selection | None]]:
        """Each segment with live vectors, and what of it `where` selects (None: all live)."""
        segments = [s for s in [self._growing, *self._segments] if s.n_live]
        if where is None:
            return [(s, None) for s in segments]
        excluded: dict[int, np.ndarray] = {}
        if where.exclude.size:
            handles = self._keys.handles(where.exclude)
            slots = self._keys.get("slots", handles, TOMBSTONE)
            positions = self._keys.get("positions", handles, 0).astype(np.int64)
            for slot in np.unique(slots[slots >= 0]).tolist():
                excluded[slot] = positions[slots == slot]
        return [(s, Selection(where.tags, excluded.get(s.slot, _NO_IDS))) for s in segments]

    def _locate(self, keys: np.ndarray) -> tuple[Segment, np.ndarray] | None:
        """The segment and position of one live id, or None."""
        handles = self._keys.handles(keys)
        slot = int(self._keys.get("slots", handles, TOMBSTONE)[0])
        if slot < 0:
            return None
        return self._slots[slot], self._keys.get("positions", handles, 0).astype(np.int64)

    def _append(
        self,
        keys: np.ndarray,
        vectors: np.ndarray,
        versions: np.ndarray,
        owners: np.ndarray,
        tags: np.ndarray,
        payload: pa.Table | None,
    ) -> None:
        """Add to the growing segment, freezing it each time it fills up."""
        start = 0
        while start < keys.size:
            end = start + self._growing.free
            rows = slice(start, end)
            chunk = None if payload is None else payload.slice(start, end - start)
            positions = self._growing.add(keys[rows], vectors[rows], tags[rows], chunk)
            self._keys.put(
                keys[rows],
                versions=versions[rows],
                owners=owners[rows],
                slots=self._growing.slot,
                positions=positions.astype(np.int32),
            )
            start = end
            if self._growing.free == 0:
                self._freeze_growing()

    def _retire(self, keys: np.ndarray) -> None:
        """Take ids out of the live set: their positions die in the segments holding them."""
        handles = self._keys.handles(keys)
        slots = self._keys.get("slots", handles, TOMBSTONE)
        positions = self._keys.get("positions", handles, 0).astype(np.int64)
        for slot in np.unique(slots[slots >= 0]).tolist():
            self._slots[slot].kill(positions[slots == slot])

    def prune_tombstones(self) -> None:
        """Drop tombstones an earlier save held; age the others by one save (before a save)."""
        with self._lock:
            self._keys.prune(lambda c: (c["slots"] == TOMBSTONE) & (c["positions"] >= 1))
            self._keys.increment("positions", lambda c: c["slots"] == TOMBSTONE)

    def _new_growing(self) -> GrowingSegment:
        growing = GrowingSegment(self._config, self._config.growing_limit, self._payload_schema)
        growing.slot = self._take_slot(growing)
        return growing

    def _take_slot(self, segment: Segment) -> int:
        slot, self._next_slot = self._next_slot, self._next_slot + 1
        self._slots[slot] = segment
        return slot

    def _freeze_growing(self) -> None:
        frozen = self._growing.freeze()
        frozen.slot = self._growing.slot
        self._slots[frozen.slot] = frozen
        self._growing = self._new_growing()
        self._segments.append(frozen)
        self._queue_seal(frozen)

    def _queue_seal(self, frozen: SealedSegment) -> None:
        def sources() -> list[SealedSegment]:
            return [frozen] if any(s is frozen for s in self._segments) else []

        self._seals[frozen] = self._submit(self._rebuild, sources)

    def _maybe_compact(self) -> None:
        """Queue a compaction when the dead fraction of sealed vectors reaches the threshold."""
        if self._compaction is not None:
            return
        sealed = [s for s in self._segments if s.sealed]
        dead = sum(s.n_dead for s in sealed)
        if dead and dead >= self._config.compact_dead_fraction * sum(s.n for s in sealed):
            try:
                self._compaction = self._submit(self._compact)
            except RuntimeError:  # the interpreter is shutting down: no new background work
                log.debug("compaction not queued: shutting down")

    def _compact(self) -> dict[str, int]:
        with self._lock:
            self._compaction = None  # from now on a new trigger queues another compaction

        def sources() -> list[SealedSegment]:
            sealed = [s for s in self._segments if s.sealed]
            return [] if len(sealed) == 1 and not sealed[0].n_dead else sealed

        return self._rebuild(sources)

    def _rebuild(self, pick: Callable[[], list[SealedSegment]]) -> dict[str, int]:
        """Replace the picked segments by one sealed segment of their live vectors.

        The slow part (training) runs without the lock. An id replaced or deleted meanwhile
        no longer points at its old (slot, position) in the key table: it is dead in the new
        segment; every other id is pointed at its new position.
        """
        with self._lock:
            sources = pick()
            if not sources:
                return {"segments": 0, "vectors": 0, "dropped": 0}
            taken = [(s, np.flatnonzero(~s.dead)) for s in sources]
        keys = np.concatenate([s.ids[p] for s, p in taken])
        built = None
        started = time.perf_counter()
        if keys.size:
            payload = None
            if self._payload_schema is not None:
                payload = pa.concat_tables([s.payload_at(p) for s, p in taken if p.size])
            built = SealedSegment.build(
                keys,
                np.concatenate([s.vectors_at(p) for s, p in taken if p.size]),
                np.concatenate([s.tags[p] for s, p in taken]),
                payload,
                self._config,
                self._spill,
            )
            # Copied to the search device here, off the lock, not by the first search.
            self._device.copy_of(built.index, built.index_in_memory)
        with self._lock:
            self._build_s += time.perf_counter() - started
            at = next(i for i, s in enumerate(self._segments) if s is sources[0])
            self._segments = [s for s in self._segments if not any(s is o for o in sources)]
            for source in sources:
                self._seals.pop(source, None)
                self._slots.pop(source.slot, None)
            if built is not None:
                was_slot = np.concatenate([np.full(p.size, s.slot) for s, p in taken])
                was_position = np.concatenate([p for _, p in taken])
                handles = self._keys.handles(keys)
                still = (self._keys.get("slots", handles, TOMBSTONE) == was_slot) & (
                    self._keys.get("positions", handles, -1) == was_position
                )
                built.kill(np.flatnonzero(~still))
                if built.n_live:
                    built.slot = self._take_slot(built)
                    self._keys.assign(
                        handles[still],
                        slots=built.slot,
                        positions=np.flatnonzero(still).astype(np.int32),
                    )
                    self._segments.insert(at, built)
            self._maybe_compact()
            kept = 0 if built is None else built.n_live
        return {
            "segments": len(sources),
            "vectors": kept,
            "dropped": sum(s.n for s in sources) - kept,
        }

    def _submit(self, task: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._lock:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="shard-maintenance")
            future = self._worker.submit(task, *args)
            self._pending += 1
            future.add_done_callback(self._task_done)
        return future

    def _task_done(self, future: Future[Any]) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()
        if not future.cancelled() and future.exception() is not None:
            log.error("shard maintenance failed", exc_info=future.exception())

    def _merge(
        self, parts: list[tuple[np.ndarray, np.ndarray]], m: int, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of per-segment results (ids are unique across segments), padded to k."""
        return merge_top_k(parts, m, k, self._config.metric)

    def _score_block(
        self, heap: Any, queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int
    ) -> None:
        if not len(ids):
            return
        metric = (
            faiss.METRIC_INNER_PRODUCT if higher_is_better(self._config.metric) else faiss.METRIC_L2
        )
        scores, rows = faiss.knn(queries, vectors, min(k, len(ids)), metric=metric)
        heap.add_result(scores, ids[rows])

    def _check_payload(self, payload: pa.Table | None, n: int) -> None:
        if (payload is None) != (self._payload_schema is None):
            raise ValueError(
                "payload must be given exactly when the index has a payload schema "
                f"({self._payload_schema})"
            )
        if payload is not None:
            if payload.num_rows != n:
                raise ValueError(f"payload has {payload.num_rows} rows for {n} ids")
            if not payload.schema.equals(self._payload_schema):
                raise ValueError(f"payload schema {payload.schema} is not {self._payload_schema}")

    def _stamp(self, versions: np.ndarray | None, n: int) -> np.ndarray:
        """Return the versions of a call's rows, stamping unversioned rows above all seen."""
        if versions is None:
            versions = np.arange(self._clock + 1, self._clock + 1 + n, dtype=np.int64)
        if versions.size:
            self._clock = max(self._clock, int(versions.max()))
        return versions

    def _accepted_rows(self, keys: np.ndarray, versions: np.ndarray) -> np.ndarray:
        """Return the rows that win (newest per id in the call, newer than any seen), in order."""
        if keys.size == 0:
            return np.empty(0, dtype=np.int64)
        # Sort by id, then version, then position: the last row of each id's run wins.
        order = np.lexsort((np.arange(keys.size), versions, keys))
        sorted_keys = keys[order]
        is_last = np.ones(keys.size, dtype=bool)
        is_last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
        winners = order[is_last]
        seen = self._keys.lookup("versions", keys[winners], RESTORED_VERSION - 1)
        # Back in call order, so segments hold rows in arrival order.
        return np.sort(winners[versions[winners] > seen])


def _key_table(rows: dict[str, np.ndarray], segments: list[Segment]) -> KeyTable:
    """The key table of a restored image: its rows (sorted by id, as images write them), live
    ones pointed at their segments, RESTORE_BLOCK positions at a time (small temporaries)."""
    ids, ages = rows["ids"], rows["ages"]
    n = ids.size
    if n > 1 and not (ids[1:] > ids[:-1]).all():
        raise ValueError("the key rows are not sorted by unique id")
    slots = np.full(n, TOMBSTONE, dtype=np.int32)
    positions = np.zeros(n, dtype=np.int32)
    tombstones = ages >= 0
    positions[tombstones] = ages[tombstones]
    claimed = np.zeros(n, dtype=bool)
    for segment in segments:
        for start in range(0, segment.n, RESTORE_BLOCK):
            held = start + np.flatnonzero(~segment.dead[start : start + RESTORE_BLOCK])
            found = segment.ids[held]
            at = np.searchsorted(ids, found)
            if found.size and ((at >= n).any() or (ids[np.minimum(at, n - 1)] != found).any()):
                raise ValueError("a live id has no version")
            if claimed[at].any() or np.unique(at).size != at.size:
                raise ValueError("an id is live in more than one segment")
            claimed[at] = True
            slots[at] = segment.slot
            positions[at] = held
    if (ages[claimed] >= 0).any() or int(claimed.sum()) != int((ages < 0).sum()):
        raise ValueError("live ids and tombstones do not match the segments")
    return KeyTable.of_sorted(
        {
            "ids": ids,
            "versions": rows["versions"],
            "owners": rows["owners"],
            "slots": slots,
            "positions": positions,
        }
    )


def _ids_at(segment: Segment, positions: np.ndarray) -> np.ndarray:
    keys = segment.ids[np.maximum(positions, 0)]
    keys[positions < 0] = -1
    return keys


def _int_column(
    values: Any, n: int, name: str, dtype: type[np.generic], minimum: int, maximum: int
) -> np.ndarray:
    """values as n ints in [minimum, maximum] of dtype (zeros when None)."""
    if values is None:
        return np.zeros(n, dtype=dtype)
    array = check_int_array(values, name, minimum, maximum)
    if array.shape != (n,):
        raise ValueError(f"{name} must be {n} integers, got {array.shape[0]}")
    return array.astype(dtype, copy=False)


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    return int(k)


def _check_offsets(log_offsets: dict[int, int]) -> dict[int, int]:
    checked = {}
    for partition, offset in log_offsets.items():
        for name, value in (("partition", partition), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"log_offsets {name} must be an int >= 0, got {value!r}")
        checked[int(partition)] = int(offset)
    return checked


def _failed(future: Future[Any]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)
