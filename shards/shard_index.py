"""One shard's vector index: versioned upserts and deletes over growing and sealed segments.

Writes go to an exact growing segment. When it reaches `growing_limit` vectors it is frozen
(still searched exactly) and a background worker seals it: builds the configured FAISS index
from its live vectors, then swaps it in. An id is live in at most one segment; replacing or
deleting an id held by a sealed segment marks its position dead there, and compaction
rebuilds sealed segments without their dead vectors once enough of them are dead.

The newest version seen for every id (live or deleted) is kept apart from the segments, so
versions decide which write wins whatever segment holds the id.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Self

import faiss
import numpy as np

from conf.config import ShardsConfig
from shards.arrays import RESTORED_VERSION, check_ids, check_matrix, check_versions
from shards.exceptions import CorruptSnapshot
from shards.raw_vectors import SpillDir
from shards.segments import GrowingSegment, SealedSegment
from shards.shard_image import SegmentImage, ShardImage, read_config, read_image, save_image
from shards.snapshot import LoadsSnapshots, Snapshot
from shards.top_k import merge_top_k

__all__ = ["ShardIndex", "ShardsConfig"]

log = logging.getLogger(__name__)

Segment = GrowingSegment | SealedSegment


class ShardIndex(LoadsSnapshots):
    """A shard's index: versioned upserts and deletes, top-k search over all segments.

    Thread-safe. spill_dir is where lossy sealed segments keep their raw vectors (a private
    temporary directory when None).
    """

    def __init__(self, config: ShardsConfig, spill_dir: str | os.PathLike[str] | None = None):
        self._config = config
        self._lock = threading.RLock()
        self._spill = SpillDir(spill_dir)
        self._growing = GrowingSegment(config)
        self._segments: list[SealedSegment] = []
        # Where each live id's vector is; len(self._home) is the live count.
        self._home: dict[int, Segment] = {}
        # Newest version seen per id, live or deleted: a delete leaves its version here as a
        # tombstone so an older upsert that arrives later is ignored.
        self._versions: dict[int, int] = {}
        # Newest version seen for any id; writes without versions are stamped above it.
        self._clock = -1
        self._log_offsets: dict[int, int] = {}
        self._worker: ThreadPoolExecutor | None = None
        self._pending = 0  # background tasks queued or running
        self._idle = threading.Condition(self._lock)
        self._seals: dict[SealedSegment, Future[dict[str, int]]] = {}
        self._compaction: Future[dict[str, int]] | None = None

    @property
    def config(self) -> ShardsConfig:
        """The config this shard was built with."""
        return self._config

    @property
    def log_offsets(self) -> dict[int, int]:
        """Next embeddings-log offset per partition that this state does not cover yet."""
        with self._lock:
            return dict(self._log_offsets)

    def __len__(self) -> int:
        with self._lock:
            return len(self._home)

    def __contains__(self, key: object) -> bool:
        """True when key is a live id."""
        with self._lock:
            return isinstance(key, int | np.integer) and int(key) in self._home

    def upsert(self, ids: Any, vectors: Any, versions: Any = None) -> int:
        """Insert or replace vectors by id; return how many rows were applied.

        A row is ignored when its version is not newer than the newest seen for its id.
        versions=None stamps rows newer than anything seen, so they always apply.
        """
        keys = check_ids(ids)
        matrix = check_matrix(vectors, self._config.dim, "vectors")
        if matrix.shape[0] != keys.shape[0]:
            raise ValueError(
                f"ids and vectors must have the same length, got {keys.shape[0]} and "
                f"{matrix.shape[0]}"
            )
        given_versions = check_versions(versions, keys.shape[0])
        with self._lock:
            stamped = self._stamp(given_versions, keys.shape[0])
            rows = self._accepted_rows(keys, stamped)
            if rows.size == 0:
                return 0
            new_keys = keys[rows]
            self._retire(new_keys)
            self._versions.update(zip(new_keys.tolist(), stamped[rows].tolist(), strict=True))
            self._append(new_keys, matrix[rows])
            self._maybe_compact()
            return int(rows.size)

    def delete(self, ids: Any, versions: Any = None) -> int:
        """Delete ids, leaving tombstone versions; return how many rows were applied.

        Versions follow the same last-writer-wins rule as upsert; deleting an id that is not
        live still records its tombstone version.
        """
        keys = check_ids(ids)
        given_versions = check_versions(versions, keys.shape[0])
        with self._lock:
            stamped = self._stamp(given_versions, keys.shape[0])
            rows = self._accepted_rows(keys, stamped)
            if rows.size == 0:
                return 0
            gone_keys = keys[rows]
            self._retire(gone_keys)
            self._versions.update(zip(gone_keys.tolist(), stamped[rows].tolist(), strict=True))
            self._maybe_compact()
            return int(rows.size)

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores float32[m, k], ids int64[m, k]), best first, padded with id -1.

        Scores are inner products ("ip", padding -inf) or squared L2 distances ("l2", +inf);
        sealed segments with lossy indexes and no reranking give approximate scores.
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        k = int(k)
        matrix = check_matrix(queries, self._config.dim, "queries")
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        if matrix.shape[0]:
            with self._lock:
                if len(self._growing):
                    parts.append(self._growing.search(matrix, min(k, len(self._growing))))
                for segment in self._segments:
                    if segment.n_live:
                        parts.append(segment.search(matrix, k, self._config))
        return self._merge(parts, matrix.shape[0], k)

    def exact_search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Like search, by brute force over the exact copy of every live vector: the oracle of
        recall checks (online monitoring), O(live vectors) per query."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        matrix = check_matrix(queries, self._config.dim, "queries")
        keys, vectors = [], []
        with self._lock:
            if len(self._growing):
                keys.append(self._growing.ids())
                vectors.append(self._growing.vectors())
            for segment in self._segments:
                live = np.flatnonzero(~segment.dead)
                if live.size:
                    keys.append(segment.ids[live])
                    vectors.append(segment.vectors_at(live))
        if not keys or not matrix.shape[0]:
            return self._merge([], matrix.shape[0], int(k))
        flat = faiss.IndexFlat(self._config.dim, self._config.metric_type)
        flat.add(np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32))
        all_keys = np.concatenate(keys)
        scores, positions = flat.search(matrix, min(int(k), len(all_keys)))
        return self._merge([(scores, all_keys[positions])], matrix.shape[0], int(k))

    def vector(self, key: int) -> np.ndarray | None:
        """Return a copy of the stored vector of a live id, or None."""
        with self._lock:
            segment = self._home.get(int(key))
            return None if segment is None else segment.vector(int(key))

    def version(self, key: int) -> int | None:
        """Return the newest version seen for an id (live or deleted), or None if never seen."""
        with self._lock:
            return self._versions.get(int(key))

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
        """Live count, segment sizes and dead fraction, for health checks and tests."""
        with self._lock:
            sealed = [s for s in self._segments if s.sealed]
            stored = sum(s.n for s in sealed)
            return {
                "live": len(self._home),
                "growing": len(self._growing),
                "segments": [
                    {
                        "vectors": s.n,
                        "dead": s.n_dead,
                        "sealed": s.sealed,
                        "index": type(faiss.downcast_index(s.index)).__name__,
                        "raw_on_disk": s.raw is not None,
                    }
                    for s in self._segments
                ],
                "dead_fraction": sum(s.n_dead for s in sealed) / stored if stored else 0.0,
                "log_offsets": dict(self._log_offsets),
            }

    def save(self, uri: str, log_offsets: dict[int, int] | None = None) -> str:
        """Publish a snapshot under uri (a local path, s3://, gs://); return its URI.

        log_offsets: per embeddings-log partition, the next offset this state does not cover.
        None keeps the offsets this index was loaded with (replaying more log is harmless).
        """
        return save_image(uri, self.image(log_offsets))

    @classmethod
    def from_snapshot(
        cls, snapshot: Snapshot, spill_dir: str | os.PathLike[str] | None = None
    ) -> Self:
        """Build an index from an opened snapshot (ShardState adds its own files to it)."""
        config = read_config(snapshot)
        index = cls(config, spill_dir)
        index._restore(read_image(snapshot, config, index._spill), snapshot.uri)
        return index

    def image(self, log_offsets: dict[int, int] | None = None) -> ShardImage:
        """A consistent copy of this shard's state (what save writes).

        log_offsets, when given, become this index's offsets (see save).
        """
        offsets = None if log_offsets is None else _check_offsets(log_offsets)
        with self._lock:
            if offsets is not None:
                self._log_offsets = offsets
            versions = np.empty((len(self._versions), 2), dtype=np.int64)
            versions[:, 0] = np.fromiter(self._versions.keys(), np.int64, len(self._versions))
            versions[:, 1] = np.fromiter(self._versions.values(), np.int64, len(self._versions))
            return ShardImage(
                config=self._config,
                clock=self._clock,
                versions=versions,
                growing_ids=self._growing.ids().copy(),
                growing_vectors=self._growing.vectors(),
                segments=[
                    SegmentImage(s.ids, s.dead.copy(), s.index, s.raw, s.sealed)
                    for s in self._segments
                ],
                log_offsets=dict(self._log_offsets),
            )

    def _restore(self, image: ShardImage, uri: str) -> None:
        """Fill this new, empty index from an image; refuse an inconsistent one."""
        try:
            self._clock = image.clock
            self._versions = dict(zip(*image.versions.T.tolist(), strict=True))
            self._log_offsets = dict(image.log_offsets)
            if len(image.growing_ids) > self._config.growing_limit:
                raise ValueError("the growing segment is larger than growing_limit")
            if len(image.growing_ids):
                self._growing.add(image.growing_ids, image.growing_vectors)
            held: list[tuple[Segment, np.ndarray]] = [(self._growing, image.growing_ids)]
            for part in image.segments:
                segment = SealedSegment(
                    part.ids, part.index, part.raw, sealed=part.sealed, dead=part.dead
                )
                self._segments.append(segment)
                held.append((segment, part.ids[~segment.dead]))
            for holder, keys in held:
                self._home.update(dict.fromkeys(keys.tolist(), holder))
            live = sum(len(keys) for _, keys in held)
            if len(self._home) != live:
                raise ValueError("an id is live in more than one segment")
            if any(key not in self._versions for key in self._home):
                raise ValueError("a live id has no version")
        except (ValueError, KeyError) as exc:
            raise CorruptSnapshot(f"{uri}: inconsistent shard state: {exc}") from exc
        with self._lock:
            for segment in self._segments:
                if not segment.sealed:
                    self._queue_seal(segment)

    def _append(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add to the growing segment, freezing it each time it reaches growing_limit."""
        start = 0
        while start < keys.size:
            end = start + self._config.growing_limit - len(self._growing)
            chunk = keys[start:end]
            self._growing.add(chunk, vectors[start:end])
            self._home.update(dict.fromkeys(chunk.tolist(), self._growing))
            start = end
            if len(self._growing) >= self._config.growing_limit:
                self._freeze_growing()

    def _retire(self, keys: np.ndarray) -> None:
        """Take ids out of the live set: removed from growing, marked dead in sealed segments."""
        held: dict[Segment, list[int]] = {}
        for key in keys.tolist():
            segment = self._home.pop(key, None)
            if segment is not None:
                held.setdefault(segment, []).append(key)
        for segment, segment_keys in held.items():
            segment.discard(np.asarray(segment_keys, dtype=np.int64))

    def _freeze_growing(self) -> None:
        frozen = self._growing.freeze()
        self._growing = GrowingSegment(self._config)
        self._segments.append(frozen)
        self._home.update(dict.fromkeys(frozen.ids.tolist(), frozen))
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

        The slow part (training) runs without the lock; ids replaced or deleted meanwhile are
        found through the old segments' dead masks and marked dead in the new one.
        """
        with self._lock:
            sources = pick()
            if not sources:
                return {"segments": 0, "vectors": 0, "dropped": 0}
            taken = [(s, np.flatnonzero(~s.dead)) for s in sources]
        keys = np.concatenate([s.ids[positions] for s, positions in taken])
        built = None
        if keys.size:
            vectors = np.concatenate([s.vectors_at(p) for s, p in taken if p.size])
            built = SealedSegment.build(keys, vectors, self._config, self._spill)
        with self._lock:
            died = np.concatenate([s.dead[positions] for s, positions in taken])
            at = next(i for i, s in enumerate(self._segments) if s is sources[0])
            self._segments = [s for s in self._segments if not any(s is o for o in sources)]
            for source in sources:
                self._seals.pop(source, None)
            if built is not None:
                built.kill(np.flatnonzero(died))
                if built.n_live:
                    self._segments.insert(at, built)
                    self._home.update(dict.fromkeys(keys[~died].tolist(), built))
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
        seen = self._versions
        accepted = [
            row
            for row, key, version in zip(
                winners.tolist(), keys[winners].tolist(), versions[winners].tolist(), strict=True
            )
            if version > seen.get(key, RESTORED_VERSION - 1)
        ]
        # Back in call order, so segments hold rows in arrival order.
        return np.sort(np.asarray(accepted, dtype=np.int64))


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
