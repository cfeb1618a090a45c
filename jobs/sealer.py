"""The sealer: folds each shard's log partition into the shard's newest snapshot, publishes a
new snapshot and prunes old ones.

`pinstream seal` runs it once (or every N seconds), `pinstream compact` runs it with
compaction, and the local stack runs it every `shards.snapshot_interval_s`. It keeps no state
of its own: a sealer that dies half-way leaves the previous snapshot current, and the next run
starts from it. Shard replicas pick up each new snapshot by themselves (serve/shard_replica.py).
Run one sealer per deployment at a time: a snapshot root has one writer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from kafka.errors import KafkaError

from conf.config import PinstreamConfig
from conf.errors import StorageError
from shards.exceptions import SnapshotError
from shards.log_follower import catch_up, resume
from shards.snapshot import prune_snapshots
from streams.dead_letter import DeadLetter, DeadLetterWriter
from streams.exceptions import StreamError
from streams.kafka_io import KafkaClientSettings, assigned_consumer

log = logging.getLogger(__name__)


def seal_shard(cfg: PinstreamConfig, shard: int, compact: bool = False) -> dict[str, Any]:
    """Bring one shard's newest snapshot up to the end of its log, seal it (and compact it),
    and publish it; nothing is published when the log has nothing new and compact is False."""
    started = time.monotonic()
    follower, source = resume(cfg, shard, keep_dead_letters=None)
    start = follower.next_offset
    index = follower.state.index
    try:
        with assigned_consumer(cfg.broker.bootstrap) as consumer:
            consumer.assign([follower.partition])
            consumer.seek(follower.partition, start)
            catch_up(follower, consumer, cfg.serve.shard_ready_idle_s)
        report: dict[str, Any] = {
            "shard": shard,
            "source": source,
            "applied_records": follower.next_offset - start,
            "bad_records": follower.bad_records,
            "log_offset": follower.next_offset,
        }
        if follower.next_offset == start and source is not None and not compact:
            return {**report, "snapshot": source, "published": False}
        # Before the snapshot moves past them: the DLQ has every skipped record at least once.
        _send_dead_letters(cfg, follower.dead_letters)
        report["sealed_vectors"] = index.stats()["growing"]
        index.seal()
        if compact:
            done = index.compact()
            report.update(merged_segments=done["segments"], dropped_vectors=done["dropped"])
        index.wait_idle()
        root = cfg.snapshot_root(shard)
        written = follower.state.save(root, log_offsets={shard: follower.next_offset})
        stats = index.stats()
        return {
            **report,
            "snapshot": written,
            "published": True,
            "live": stats["live"],
            "segments": len(stats["segments"]),
            "pruned": prune_snapshots(root, cfg.shards.snapshots_keep),
            "seconds": round(time.monotonic() - started, 3),
        }
    finally:
        index.close()


def _send_dead_letters(cfg: PinstreamConfig, letters: Iterable[DeadLetter]) -> None:
    """Write the log records a seal skipped to the DLQ topic, delivery checked."""
    letters = list(letters)
    if not letters:
        return
    with DeadLetterWriter(
        cfg.broker.bootstrap, cfg.topics.dlq, KafkaClientSettings.of(cfg.broker)
    ) as writer:
        for letter in letters:
            writer.write(letter)
        writer.flush()


def seal_all(cfg: PinstreamConfig, compact: bool = False) -> list[dict[str, Any]]:
    """seal_shard for every shard, one after the other (one shard's copy in memory at a time)."""
    return [seal_shard(cfg, shard, compact) for shard in range(cfg.shards.count)]


# What a sealer run meets when the broker or storage is out, which the next run retries: Kafka's
# errors, the streams adapters' (StreamError), storage's (OSError, StorageError) and a snapshot
# that cannot be read or written (SnapshotError).
RETRIED: tuple[type[Exception], ...] = (
    KafkaError,
    StreamError,
    OSError,
    StorageError,
    SnapshotError,
)


class PeriodicSealer:
    """Runs seal_all every `interval_s` in a background thread until stopped; a run that meets
    an outage is retried at the next interval, a bug stops the thread and is kept in `error`."""

    def __init__(self, cfg: PinstreamConfig, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.cfg = cfg
        self.interval_s = interval_s
        self.runs = 0
        self.last: list[dict[str, Any]] = []
        self.error: Exception | None = None  # the bug that stopped it, if one did
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sealer", daemon=True)

    def start(self) -> PeriodicSealer:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                self.last = seal_all(self.cfg)
                self.runs += 1
            except RETRIED as exc:  # an outage: the next run starts again from the last snapshot
                log.error("sealer run failed; retrying in %.0fs: %r", self.interval_s, exc)
            except Exception as exc:  # a bug fails every run alike: stop, and say so
                self.error = exc
                log.exception("sealer stopped by an unexpected error: no more snapshots")
                return

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=60)
