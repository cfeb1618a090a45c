"""Folding one embeddings-log partition into a ShardState: shard replicas and the sealer do it.

A follower starts at the log offset its state does not cover yet (0 for an empty state, the
snapshot's offset for a loaded one) and applies records in order. A record no shard may apply
(undecodable, foreign schema or generation) is skipped and kept as a dead letter with its
offset and reason, so one bad record cannot stop a shard; the sealer writes them to the DLQ
topic. Anything else that fails while applying rows is a bug: it raises, and the follower
stays at that record.

The fold of the log is the shard's business, so it lives in `shards`, above the log format it
reads (`streams.embeddings_log`) and below its two users, the shard replicas
(`serve.shard_replica`) and the sealer and restore jobs (`jobs.sealer`, `jobs.restore`): none
of them reaches into the other's package for it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import pyarrow as pa
from kafka import KafkaConsumer, TopicPartition

from conf.config import PinstreamConfig
from shards.exceptions import CorruptSnapshot, SnapshotNotFound
from shards.readiness import CatchUp
from shards.search_device import search_device
from shards.shard_state import ShardState
from shards.snapshot import Snapshot, first_good
from streams.dead_letter import DeadLetter
from streams.embeddings_log import checked_rows, log_schema
from streams.exceptions import InvalidLogRecord

log = logging.getLogger(__name__)
KEPT_DEAD_LETTERS = 100


class LogFollower:
    """Applies the records of one log partition to a ShardState, in offset order."""

    def __init__(
        self,
        state: ShardState,
        topic: str,
        shard: int,
        generation: str,
        start_offset: int = 0,
        keep_dead_letters: int | None = KEPT_DEAD_LETTERS,
    ) -> None:
        self.state = state
        self.partition = TopicPartition(topic, shard)
        self.generation = generation
        self.next_offset = start_offset
        self.bad_records = 0
        # Dead letters: the sealer keeps every one (keep_dead_letters=None) and writes them to
        # the DLQ topic; a replica keeps the newest few for its stats, so a flood of bad
        # records cannot fill its memory.
        self.dead_letters: deque[DeadLetter] = deque(maxlen=keep_dead_letters)
        self._schema = log_schema(state.config.dim)

    def apply(self, value: bytes | None, offset: int, key: bytes | None = None) -> pa.Table | None:
        """Apply one record and return its rows; a record no shard may apply gives None."""
        try:
            rows = checked_rows(value, self._schema, self.generation)
        except InvalidLogRecord as exc:
            self.bad_records += 1
            self.dead_letters.append(
                DeadLetter(
                    exc.reason, self.partition.topic, self.partition.partition, offset, key, value
                )
            )
            log.error(
                "shard %d: bad log record at offset %d skipped: %s",
                self.partition.partition,
                offset,
                exc.reason,
            )
            self.next_offset = offset + 1
            return None
        self.state.apply_rows(rows)  # a failure here is a bug: it raises, nothing is skipped
        self.next_offset = offset + 1
        return rows

    def poll(self, consumer: KafkaConsumer, timeout_ms: int) -> list[pa.Table | None]:
        """Apply one poll of the partition: the rows of each record polled (None: skipped)."""
        records = consumer.poll(timeout_ms=timeout_ms).get(self.partition, [])
        return [self.apply(record.value, record.offset, record.key) for record in records]

    def carry_over(self, earlier: LogFollower) -> None:
        """Keep the count and dead letters of the follower this one replaces."""
        self.bad_records += earlier.bad_records
        kept = [*earlier.dead_letters, *self.dead_letters]
        self.dead_letters = deque(kept, maxlen=self.dead_letters.maxlen)


def catch_up(
    follower: LogFollower,
    consumer: KafkaConsumer,
    idle_s: float,
    poll_timeout_ms: int = 100,
    stopping: Callable[[], bool] = lambda: False,
) -> None:
    """Apply records until the partition's end: no lag left, and a poll found nothing for idle_s.

    The consumer must be assigned the follower's partition and positioned at its next offset.
    """
    tp = follower.partition
    done = CatchUp(lambda: int(consumer.end_offsets([tp])[tp]), 0, idle_s)
    while not stopping():
        got = bool(follower.poll(consumer, poll_timeout_ms))
        if done.after_poll(follower.next_offset, got):
            return


def resume(
    cfg: PinstreamConfig,
    shard: int,
    keep_dead_letters: int | None = KEPT_DEAD_LETTERS,
    share_with: ShardState | None = None,
) -> tuple[LogFollower, str | None]:
    """A follower over the newest good snapshot of the shard and the snapshot's URI; over an
    empty state from offset 0 (and None) when the shard has no snapshot yet. share_with: the
    state served now, whose sealed segments the loaded one shares where they are the same."""
    topic, generation = cfg.topics.embeddings, cfg.model.generation
    config = cfg.shards

    def load(snapshot: Snapshot) -> tuple[LogFollower, str]:
        # Snapshots do not record a search device: this replica's config names it, and a swap
        # keeps the served state's (with its device copies of the shared segments).
        device = None if share_with is not None else search_device(config.search_device)
        state = ShardState.from_snapshot(snapshot, share_with=share_with, device=device)
        if (state.config.dim, state.config.metric) != (config.dim, config.metric):
            state.index.close()
            raise CorruptSnapshot(
                f"{snapshot.uri} holds {state.config.metric} vectors of dim {state.config.dim}, "
                f"this shard {config.metric} of dim {config.dim}"
            )
        offsets = state.index.log_offsets
        if shard not in offsets:
            state.index.close()
            raise CorruptSnapshot(f"{snapshot.uri} covers no offset of log partition {shard}")
        follower = LogFollower(state, topic, shard, generation, offsets[shard], keep_dead_letters)
        return follower, snapshot.uri

    try:
        return first_good(cfg.snapshot_root(shard), load)
    except SnapshotNotFound:
        return LogFollower(ShardState(config), topic, shard, generation, 0, keep_dead_letters), None
