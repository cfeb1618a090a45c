"""One shard replica: the newest snapshot of its shard plus its log partition, searchable.

Plain class (no Serve decorator) so tests drive it directly; `serve/app.py` runs it as one
Serve deployment per shard. A replica starts from the newest good snapshot of its shard (or
empty) and tails its embeddings-log partition from the snapshot's offset; the constructor
returns (and Serve routes requests to the replica) only once it has caught up.

When the sealer publishes a newer snapshot, a watcher thread loads it beside the live state;
the tail thread then replays the log into it up to the live state's offset and swaps it in.
Queries keep reading the old state until the swap, so none fails or sees an older index.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from conf.config import PinstreamConfig
from conf.errors import StorageError
from serve.exceptions import ShardNotReady
from serve.freshness import FreshnessTracker
from serve.metrics import shard_batch_size_histogram
from serve.micro_batcher import MicroBatcher
from serve.shard_query import ShardQuery, answer_queries, group_count
from shards.exceptions import SnapshotError
from shards.log_follower import LogFollower, resume
from shards.readiness import CatchUp
from shards.shard_state import Hits, ShardState
from shards.snapshot import list_snapshots
from streams.events import now_ms
from streams.kafka_io import KafkaClientSettings, assigned_consumer

log = logging.getLogger(__name__)
NEWEST_BAD_RECORDS = 5  # shown in stats (/healthz)

# A replaced state is closed this long after the swap: searches that began on it finish first.
RETIRE_AFTER_S = 30.0


class ShardReplica:
    """Applies its partition of the log in a background thread; searches any time.

    Concurrent `search` and `search_batch` calls are gathered into batches
    (`serve.shard_max_batch_size`, `serve.shard_batch_wait_s`) and searched together, one
    batch at a time (`answer_batch`).
    """

    def __init__(self, cfg: PinstreamConfig, shard: int, poll_timeout_ms: int = 100) -> None:
        if cfg.broker.is_local:
            raise ValueError("ShardReplica needs a resolved bootstrap address, not 'local'")
        self.cfg = cfg
        self.shard = shard
        self._poll_timeout_ms = poll_timeout_ms
        self._follower, self.snapshot_uri = resume(cfg, shard)
        self.started_from = self.snapshot_uri
        self.freshness = FreshnessTracker(shard)
        self._last_applied_ms = 0
        self._swaps = 0
        self.batch_sizes = shard_batch_size_histogram()
        self._batches: Counter[int] = Counter()  # batch size -> batches searched
        self._faiss_calls = 0
        self._search_s = 0.0  # time spent searching: with wall time, how loaded the replica is
        self._counts_lock = threading.Lock()  # batches are searched in worker threads
        self._batcher: MicroBatcher[ShardQuery, Hits] = MicroBatcher(
            self.answer_batch, cfg.serve.shard_max_batch_size, cfg.serve.shard_batch_wait_s
        )
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._end_offset: int | None = None
        self._loaded: tuple[LogFollower, str] | None = None  # a newer snapshot, not yet swapped in
        self._loaded_lock = threading.Lock()
        self._retired: list[tuple[float, ShardState]] = []
        self._tail = threading.Thread(
            target=self._tail_log, name=f"shard-{shard}-tail", daemon=True
        )
        self._tail.start()
        self._watcher = threading.Thread(
            target=self._watch_snapshots, name=f"shard-{shard}-snapshots", daemon=True
        )
        self._wait_until_caught_up()
        self._watcher.start()

    @property
    def state(self) -> ShardState:
        """The state queries read now."""
        return self._follower.state

    def _wait_until_caught_up(self) -> None:
        settings = self.cfg.serve
        started = time.monotonic()
        deadline = started + settings.shard_ready_timeout_s
        while not self._ready.wait(timeout=0.05):
            if not self._tail.is_alive():
                raise ShardNotReady(f"shard {self.shard}: log tail stopped while catching up")
            if time.monotonic() > deadline:
                self.close()
                raise ShardNotReady(
                    f"shard {self.shard}: not caught up with its log after "
                    f"{settings.shard_ready_timeout_s}s (at offset {self._follower.next_offset}, "
                    f"broker end {self._end_offset})"
                )
        log.info(
            "shard %d: caught up at offset %d (%d pins, from %s) in %.1fs",
            self.shard,
            self._follower.next_offset,
            len(self.state),
            self.started_from or "an empty state",
            time.monotonic() - started,
        )

    def _tail_log(self) -> None:
        settings = self.cfg.serve
        tp = self._follower.partition
        # The broker's client settings: among them its short fetch wait, without which the
        # local broker answers this tail's fetches late (streams/kafka_io.py).
        client = KafkaClientSettings.of(self.cfg.broker)
        with assigned_consumer(self.cfg.broker.bootstrap, client=client) as consumer:
            consumer.assign([tp])
            consumer.seek(tp, self._follower.next_offset)
            catch_up = CatchUp(
                lambda: int(consumer.end_offsets([tp])[tp]),
                settings.shard_ready_max_lag,
                settings.shard_ready_idle_s,
            )
            while not self._stopping.is_set():
                # A poll returns as soon as a fetch brings records; its timeout only paces
                # the loop (swaps, readiness) while the log is idle.
                polled = self._follower.poll(consumer, self._poll_timeout_ms)
                self._observe(polled)
                if not self._ready.is_set():
                    ready = catch_up.after_poll(self._follower.next_offset, bool(polled))
                    self._end_offset = catch_up.end
                    if ready:
                        self._ready.set()
                self._swap_in_loaded(consumer)
                self._close_retired()

    def _observe(self, polled: list[Any]) -> None:
        now = now_ms()
        for rows in polled:
            if rows is not None:
                self.freshness.observe(rows.column("event_time").to_pylist(), now)
                self._last_applied_ms = now

    def _watch_snapshots(self) -> None:
        """The watcher thread: load each newer snapshot; the tail thread swaps it in."""
        try:
            self._load_newer_snapshots()
        except Exception:
            # A bug, not a bad snapshot: it would fail again at every poll while this replica
            # served an ever older snapshot. The watcher stops, check_health fails, and Serve
            # replaces the replica with one started the way every replica starts (newest good
            # snapshot, then the log): a tested state, not a thread revived in an unknown one.
            log.exception("shard %d: snapshot watcher stopped by an unexpected error", self.shard)

    def _load_newer_snapshots(self) -> None:
        """Until stopped: hand each newer snapshot of the shard to the tail thread. A snapshot
        that is bad or unreadable, or storage that fails, is logged and looked at again."""
        root = self.cfg.snapshot_root(self.shard)
        seen = self.snapshot_uri  # the last snapshot served or handed to the tail thread
        refused = None  # the newest snapshot when it failed to load: not retried until replaced
        while not self._stopping.wait(self.cfg.serve.snapshot_poll_s):
            try:
                newest = next(iter(list_snapshots(root)), None)
                if newest in (None, seen, refused):
                    continue
                # Segments the served state holds already are shared, not loaded twice.
                follower, uri = resume(self.cfg, self.shard, share_with=self.state)
            except (SnapshotError, StorageError, OSError) as exc:  # keep serving the current one
                log.error("shard %d: looking for a newer snapshot failed: %s", self.shard, exc)
                continue
            if uri != newest:
                refused = newest
            if uri is None or uri == seen:
                follower.state.index.close()
                continue
            seen = uri
            with self._loaded_lock:
                if self._loaded is not None:
                    self._loaded[0].state.index.close()
                self._loaded = (follower, uri)

    def _swap_in_loaded(self, consumer: Any) -> None:
        """Replay the log into a loaded snapshot up to the live offset, then serve from it."""
        with self._loaded_lock:
            loaded, self._loaded = self._loaded, None
        if loaded is None:
            return
        follower, uri = loaded
        live_offset = self._follower.next_offset
        deadline = time.monotonic() + self.cfg.serve.shard_ready_timeout_s
        if follower.next_offset < live_offset:
            consumer.seek(follower.partition, follower.next_offset)
            while follower.next_offset < live_offset and not self._stopping.is_set():
                follower.poll(consumer, self._poll_timeout_ms)
                if time.monotonic() > deadline:
                    log.error(
                        "shard %d: replay into %s timed out; live state kept", self.shard, uri
                    )
                    break
        if follower.next_offset < live_offset:  # stopping, or the replay timed out
            follower.state.index.close()
            consumer.seek(self._follower.partition, live_offset)
            return
        consumer.seek(follower.partition, follower.next_offset)
        follower.carry_over(self._follower)
        retired = self._follower.state
        self._follower, self.snapshot_uri = follower, uri
        self._retired.append((time.monotonic(), retired))
        self._swaps += 1
        log.info("shard %d: now serving %s at offset %d", self.shard, uri, follower.next_offset)

    def _close_retired(self, now: float | None = None, after_s: float = RETIRE_AFTER_S) -> None:
        now = time.monotonic() if now is None else now
        while self._retired and now - self._retired[0][0] >= after_s:
            self._retired.pop(0)[1].index.close()

    async def search(self, query: ShardQuery) -> Hits:
        """Top-k of one query, best first, among the pins that pass its filter: searched with
        the queries that arrive meanwhile (serve/micro_batcher.py), in a worker thread (FAISS
        releases the GIL), so the next batch gathers while this one is searched."""
        return await self._batcher.submit(query)

    async def search_batch(self, queries: list[ShardQuery]) -> list[Hits]:
        """Top-k of each query, in order (what the ingress sends for queries that reached it
        together): searched with the other queries that arrive meanwhile, as `search`."""
        return await self._batcher.submit_many(queries)

    def answer_batch(self, queries: list[ShardQuery]) -> list[Hits]:
        """Top-k of each query, in order, now: one FAISS search per group of queries that
        share k, filter and mode (serve/shard_query.py)."""
        self.batch_sizes.observe(len(queries))
        started = time.perf_counter()
        answers = answer_queries(self.state, queries)
        with self._counts_lock:
            self._batches[len(queries)] += 1
            self._faiss_calls += group_count(queries)
            self._search_s += time.perf_counter() - started
        return answers

    def get(self, pin_id: str) -> dict[str, Any] | None:
        """The indexed pin with its vector, or None."""
        return self.state.get(pin_id)

    def stats(self) -> dict[str, Any]:
        """Size and log position, for /healthz and for waiting until pins are searchable."""
        return {
            "shard": self.shard,
            "pins": len(self.state),
            "log_offset": self._follower.next_offset,
            "bad_records": self._follower.bad_records,
            "newest_bad_records": [
                {"offset": letter.offset, "reason": letter.reason}
                for letter in list(self._follower.dead_letters)[-NEWEST_BAD_RECORDS:]
            ],
            "last_applied_ms": self._last_applied_ms,
            "tailing": self._tail.is_alive(),
            "snapshot": self.snapshot_uri,
            "started_from": self.started_from,
            "snapshot_swaps": self._swaps,
            "freshness": self.freshness.percentiles(),
            "batches": {str(size): count for size, count in sorted(self._batches.items())},
            "faiss_searches": self._faiss_calls,
            "search_seconds": round(self._search_s, 6),
        }

    def check_health(self) -> None:
        """Serve calls this: a replica whose log tail or snapshot watcher died is replaced."""
        if self._stopping.is_set():
            return
        if not self._tail.is_alive():
            raise RuntimeError(f"shard {self.shard}: log tail thread stopped")
        if self._ready.is_set() and not self._watcher.is_alive():
            raise RuntimeError(f"shard {self.shard}: snapshot watcher thread stopped")

    def close(self) -> None:
        self._stopping.set()
        self._tail.join(timeout=5)
        if self._watcher.is_alive():
            self._watcher.join(timeout=5)
        self._close_retired(after_s=0.0)
