"""Small adapters over kafka-python: topics, assigned consumers, offset commits, producers.

Clients are created lazily by the functions that need them, so objects holding
only a bootstrap string pickle into Ray workers. Consumers always `assign()`
partitions (the local broker's group join takes ~20 s) and commit under a group id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, Self

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from streams.exceptions import StreamError

MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def ensure_topics(bootstrap: str, partitions: Mapping[str, int], replication: int = 1) -> None:
    """Create the topics that do not exist yet; wait until their metadata is visible."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="pinstream-admin")
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(name, num_partitions=count, replication_factor=replication)
            for name, count in partitions.items()
            if name not in existing
        ]
        if new:
            with suppress(TopicAlreadyExistsError):  # created concurrently by another process
                admin.create_topics(new)
    finally:
        admin.close()
    with assigned_consumer(bootstrap) as consumer:
        for name, count in partitions.items():
            found = partitions_of(consumer, name)
            if len(found) != count:
                raise StreamError(f"topic {name} has {len(found)} partitions, config says {count}")


def partitions_of(consumer: KafkaConsumer, topic: str, timeout_s: float = 10.0) -> list[int]:
    """The partition numbers of `topic`, waiting for metadata up to a deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = consumer.partitions_for_topic(topic)
        if found:
            return sorted(found)
        if time.monotonic() > deadline:
            raise StreamError(f"topic {topic!r} not found on the broker")
        consumer.poll(timeout_ms=50)  # drives a metadata refresh
        time.sleep(0.05)


@contextmanager
def assigned_consumer(
    bootstrap: str, group_id: str | None = None, **options: Any
) -> Iterator[KafkaConsumer]:
    """A consumer that is never subscribed: callers assign partitions and seek."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=MAX_MESSAGE_BYTES * 4,
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        **options,
    )
    try:
        yield consumer
    finally:
        consumer.close(autocommit=False)


def committed_offsets(bootstrap: str, group_id: str, topic: str) -> dict[int, int]:
    """Per partition, the committed next offset to read for `group_id` (0 when none)."""
    with assigned_consumer(bootstrap, group_id) as consumer:
        result = {}
        for partition in partitions_of(consumer, topic):
            committed = consumer.committed(TopicPartition(topic, partition))
            result[partition] = int(committed) if committed is not None else 0
        return result


def commit_offsets(consumer: KafkaConsumer, topic: str, offsets: Mapping[int, int]) -> None:
    """Commit `offsets` (partition -> next offset to read) under the consumer's group."""
    if offsets:
        consumer.commit(
            {TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
        )


def make_producer(bootstrap: str, **options: Any) -> KafkaProducer:
    """A producer that waits for every replica's ack (nothing is lost once `flush` returns)."""
    settings: dict[str, Any] = {
        "acks": "all",
        "linger_ms": 5,
        "retries": 5,
        "max_request_size": MAX_MESSAGE_BYTES,
    }
    settings.update(options)
    return KafkaProducer(bootstrap_servers=bootstrap, **settings)


def drain(bootstrap: str, topic: str, idle_s: float = 1.0, timeout_s: float = 60.0) -> list[Any]:
    """Every record of `topic` from the beginning, read until no fetch returns any for `idle_s`.

    Never trusts the reported end offset (the local broker's lags): reads until idle.
    """
    with assigned_consumer(bootstrap) as consumer:
        tps = [TopicPartition(topic, p) for p in partitions_of(consumer, topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        started = last = time.monotonic()
        while time.monotonic() - last < idle_s:
            if time.monotonic() - started > timeout_s:
                raise StreamError(f"reading {topic} did not go idle within {timeout_s}s")
            polled = consumer.poll(timeout_ms=100)
            for batch in polled.values():
                records.extend(batch)
            if polled:
                last = time.monotonic()
        return sorted(records, key=lambda r: (r.partition, r.offset))


class LazyProducer:
    """Holds a Kafka producer created on first use, so holders pickle into Ray workers."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer: KafkaProducer | None = None

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = make_producer(self.bootstrap)
        return self._producer

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every sent record is acknowledged (raises if one failed)."""
        if self._producer is not None:
            self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
