"""A Ray Data source over Kafka: one read task per partition, each from its own offset.

`ray.data.read_kafka` takes one start offset for all partitions, so it cannot
resume each partition from its committed offset; this source can. A read task
yields one packed poll batch per non-empty poll. It runs until the stream has
been idle for `idle_stop_s` (bounded reads: backfills, tests) or, when that is
None, until the execution is stopped (the continuous ingest job); then an idle
partition yields an empty batch every `HEARTBEAT_S`, so the consumer of the
stream wakes up and can stop even when no pin arrives. Each batch carries the
span of positions its polls moved over (streams/poll_batch.py): a poll that moved
over transaction markers or aborted records only yields a batch of no records and
one span, so the commit moves past them too. A batch closes when it is full or when its
oldest record has spent the batch's share of the latency budget (streams/batch_budget.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pyarrow as pa
from kafka import TopicPartition
from ray.data import Datasource, ReadTask
from ray.data.block import Block, BlockMetadata

from streams.batch_budget import BatchBudget
from streams.kafka_io import DEFAULT_CLIENT, KafkaClientSettings, assigned_consumer
from streams.poll_batch import RECORD_SCHEMA, empty_records, pack, spans_table

HEARTBEAT_S = 1.0


@dataclass(frozen=True)
class PartitionRead:
    """Read `topic`/`partition` from `start_offset` on."""

    bootstrap: str
    topic: str
    partition: int
    start_offset: int
    max_poll_records: int
    poll_timeout_ms: int
    idle_stop_s: float | None
    batch_budget_ms: int = 0
    client: KafkaClientSettings = DEFAULT_CLIENT

    def __call__(self) -> Iterator[Block]:
        tp = TopicPartition(self.topic, self.partition)
        with assigned_consumer(self.bootstrap, client=self.client) as consumer:
            consumer.assign([tp])
            consumer.seek(tp, self.start_offset)
            position = self.start_offset
            budget = BatchBudget(self.max_poll_records, self.batch_budget_ms)

            def poll(timeout_ms: int, max_records: int) -> list:
                return consumer.poll(timeout_ms=timeout_ms, max_records=max_records).get(tp, [])

            last_record = last_yield = time.monotonic()
            while True:
                records = budget.fill(poll, self.poll_timeout_ms)
                start = min(position, records[0].offset) if records else position
                moved = consumer.position(tp, timeout_ms=self.client.request_timeout_ms)
                position = position if moved is None else int(moved)
                now = time.monotonic()
                if records or position > start:
                    last_record = last_yield = now
                    span = spans_table([(self.partition, start, position)])
                    yield pack(self._to_table(records), span)
                elif self.idle_stop_s is not None:
                    # The local broker's high watermark lags, so "caught up" is
                    # decided by an idle stream, never by the reported end offset.
                    if now - last_record >= self.idle_stop_s:
                        return
                elif now - last_yield >= HEARTBEAT_S:
                    last_yield = now
                    yield pack(empty_records(), spans_table([]))

    def _to_table(self, records: list) -> pa.Table:
        return pa.table(
            {
                "partition": pa.array([self.partition] * len(records), pa.int32()),
                "offset": pa.array([r.offset for r in records], pa.int64()),
                "timestamp_ms": pa.array([r.timestamp for r in records], pa.int64()),
                "key": pa.array([r.key for r in records], pa.binary()),
                "value": pa.array([r.value for r in records], pa.binary()),
            },
            schema=RECORD_SCHEMA,
        )


class KafkaSource(Datasource):
    """Ray Data datasource: `start_offsets` maps each partition to read to its first offset."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        start_offsets: Mapping[int, int],
        max_poll_records: int = 64,
        poll_timeout_ms: int = 100,
        idle_stop_s: float | None = None,
        batch_budget_ms: int = 0,
        client: KafkaClientSettings = DEFAULT_CLIENT,
    ) -> None:
        super().__init__()
        if not start_offsets:
            raise ValueError(f"no partitions to read for topic {topic!r}")
        self._reads = [
            PartitionRead(
                bootstrap=bootstrap,
                topic=topic,
                partition=partition,
                start_offset=offset,
                max_poll_records=max_poll_records,
                poll_timeout_ms=poll_timeout_ms,
                idle_stop_s=idle_stop_s,
                batch_budget_ms=batch_budget_ms,
                client=client,
            )
            for partition, offset in sorted(start_offsets.items())
        ]

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context=None
    ) -> list[ReadTask]:
        """One task per partition, whatever the requested parallelism."""
        unknown = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
        return [ReadTask(read, unknown) for read in self._reads]

    def get_name(self) -> str:
        return "Kafka"
