"""Folding one embeddings-log partition into a ShardState: shard replicas and the sealer do it.

A follower starts at the log offset its state does not cover yet (0 for an empty state, the
snapshot's offset for a loaded one) and applies records in order. A corrupt or foreign record
is counted and skipped, never applied, so one bad record cannot stop a shard.

The fold of the log is the shard's business, so it lives in `shards`, above the log format it
reads (`streams.embeddings_log`) and below its two users, the shard replicas
(`serve.shard_replica`) and the sealer and restore jobs (`jobs.sealer`, `jobs.restore`): none
of them reaches into the other's package for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa
from kafka import KafkaConsumer, TopicPartition

from conf.config import PinstreamConfig
from shards.exceptions import CorruptSnapshot, SnapshotNotFound
from shards.readiness import CatchUp
from shards.shard_state import ShardState
from shards.snapshot import Snapshot, first_good
from streams.embeddings_log import decode_rows, log_schema

log = logging.getLogger(__name__)


class LogFollower:
    """Applies the records of one log partition to a ShardState, in offset order."""

    def __init__(
        self, state: ShardState, topic: str, shard: int, generation: str, start_offset: int = 0
    ) -> None:
        self.state = state
        self.partition = TopicPartition(topic, shard)
        self.generation = generation
        self.next_offset = start_offset
        self.bad_records = 0
        self._schema = log_schema(state.config.dim)

    def apply(self, value: bytes, offset: int) -> pa.Table | None:
        """Apply one record and return its rows; a bad record is counted and gives None."""
        try:
            rows = decode_rows(value)
            if not rows.schema.equals(self._schema):
                raise ValueError(f"not the embeddings-log schema: {rows.schema}")
            foreign = set(rows.column("generation").to_pylist()) - {self.generation}
            if foreign:  # vectors of two models never meet in one index
                raise ValueError(f"rows of generation {sorted(foreign)} in {self.generation}'s log")
            self.state.apply_rows(rows)
        except (pa.ArrowInvalid, ValueError) as exc:
            self.bad_records += 1
            log.error(
                "shard %d: bad log record at offset %d skipped: %s",
                self.partition.partition,
                offset,
                exc,
            )
            return None
        finally:
            self.next_offset = offset + 1
        return rows

    def poll(self, consumer: KafkaConsumer, timeout_ms: int) -> list[pa.Table | None]:
        """Apply one poll of the partition: the rows of each record polled (None: skipped)."""
        records = consumer.poll(timeout_ms=timeout_ms).get(self.partition, [])
        return [self.apply(record.value, record.offset) for record in records]


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


def resume(cfg: PinstreamConfig, shard: int) -> tuple[LogFollower, str | None]:
    """A follower over the newest good snapshot of the shard and the snapshot's URI; over an
    empty state from offset 0 (and None) when the shard has no snapshot yet."""
    topic, generation = cfg.topics.embeddings, cfg.model.generation
    config = cfg.shards

    def load(snapshot: Snapshot) -> tuple[LogFollower, str]:
        state = ShardState.from_snapshot(snapshot)
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
        return LogFollower(state, topic, shard, generation, offsets[shard]), snapshot.uri

    try:
        return first_good(cfg.snapshot_root(shard), load)
    except SnapshotNotFound:
        return LogFollower(ShardState(config), topic, shard, generation), None
