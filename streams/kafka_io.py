"""Small adapters over kafka-python: topics, assigned consumers, offset commits, producers.

Clients are created lazily by the functions that need them, so objects holding
only a bootstrap string pickle into Ray workers. Consumers always `assign()`
partitions (the local broker's group join takes ~20 s) and commit under a group id.
Every call that waits on the broker has a deadline (`KafkaClientSettings`): a broker
that is away makes a call fail, never hang.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Self

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.producer.future import FutureRecordMetadata
from kafka.structs import OffsetAndMetadata

from conf.config import BrokerConfig
from streams.exceptions import DeliveryFailed, StreamError

MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class KafkaClientSettings:
    """How a Kafka client names itself and how long it waits on the broker before a call fails.

    client_id names the client in the broker's logs and quotas;
    request_timeout_ms bounds one request (and a consumer's bootstrap);
    delivery_timeout_ms bounds a sent record's wait for its ack, retries included;
    close_timeout_s bounds closing a client whose broker is away;
    fetch_max_wait_ms bounds how long the broker holds a consumer's fetch that found nothing.
    """

    client_id: str = "pinstream"
    request_timeout_ms: int = 30_000
    delivery_timeout_ms: int = 120_000
    close_timeout_s: float = 5.0
    fetch_max_wait_ms: int = 100

    @classmethod
    def of(cls, broker: BrokerConfig) -> KafkaClientSettings:
        """The settings of a broker config (which checked them when it was loaded)."""
        return cls(
            broker.client_id,
            broker.request_timeout_ms,
            broker.delivery_timeout_ms,
            broker.close_timeout_s,
            broker.fetch_max_wait_ms,
        )

    @property
    def flush_timeout_s(self) -> float:
        """Every sent record has failed or succeeded by then."""
        return self.delivery_timeout_ms / 1000 + self.close_timeout_s


DEFAULT_CLIENT = KafkaClientSettings()


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
    bootstrap: str,
    group_id: str | None = None,
    client: KafkaClientSettings = DEFAULT_CLIENT,
    **options: Any,
) -> Iterator[KafkaConsumer]:
    """A consumer that is never subscribed: callers assign partitions and seek.

    It reads committed records only (`read_committed`): aborted transactional writes
    are skipped, and their markers leave gaps in the offsets that commits step over.
    Its fetches wait at most `client.fetch_max_wait_ms` (kafka-python's default is 500):
    Kafka answers a fetch as soon as a record arrives, so there the wait costs only empty
    fetches of an idle consumer, but the local broker holds a fetch for a good part of its
    wait even when records arrive, and a pin's freshness pays that at each consumer hop
    (the source, then the shard replica).
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        client_id=client.client_id,
        fetch_max_bytes=MAX_MESSAGE_BYTES * 4,
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        request_timeout_ms=client.request_timeout_ms,
        bootstrap_timeout_ms=client.request_timeout_ms,
        fetch_max_wait_ms=client.fetch_max_wait_ms,
        **options,
    )
    try:
        yield consumer
    finally:
        consumer.close(autocommit=False, timeout_ms=int(client.close_timeout_s * 1000))


def committed_offsets(
    bootstrap: str, group_id: str, topic: str, client: KafkaClientSettings = DEFAULT_CLIENT
) -> dict[int, int]:
    """Per partition, the committed next offset to read for `group_id` (0 when none)."""
    with assigned_consumer(bootstrap, group_id, client) as consumer:
        return committed_positions(consumer, topic, client)


def committed_positions(
    consumer: KafkaConsumer, topic: str, client: KafkaClientSettings = DEFAULT_CLIENT
) -> dict[int, int]:
    """Per partition, the next offset to read committed under the consumer's group (0: none)."""
    result = {}
    for partition in partitions_of(consumer, topic, client.request_timeout_ms / 1000):
        committed = consumer.committed(
            TopicPartition(topic, partition), timeout_ms=client.request_timeout_ms
        )
        result[partition] = int(committed) if committed is not None else 0
    return result


def commit_offsets(
    consumer: KafkaConsumer,
    topic: str,
    offsets: Mapping[int, int],
    client: KafkaClientSettings = DEFAULT_CLIENT,
) -> None:
    """Commit `offsets` (partition -> next offset to read) under the consumer's group."""
    if offsets:
        consumer.commit(
            {TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()},
            timeout_ms=client.request_timeout_ms,
        )


def make_producer(
    bootstrap: str, client: KafkaClientSettings = DEFAULT_CLIENT, **options: Any
) -> KafkaProducer:
    """A producer that waits for every replica's ack and fails a record after the delivery
    timeout; callers check each send's future (see LazyProducer.flush)."""
    settings: dict[str, Any] = {
        "client_id": client.client_id,
        "acks": "all",
        "linger_ms": 5,
        # kafka-python's idempotent producer stops sending for good after one expired
        # batch. Order and duplicates need no broker help here: versions (source offsets)
        # order every pin's events, and replays are harmless.
        "enable_idempotence": False,
        "request_timeout_ms": client.request_timeout_ms,
        "delivery_timeout_ms": client.delivery_timeout_ms,
        "max_block_ms": client.request_timeout_ms,
        "max_request_size": MAX_MESSAGE_BYTES,
    }
    settings.update(options)
    return KafkaProducer(bootstrap_servers=bootstrap, **settings)


def close_producer(producer: KafkaProducer, timeout_s: float) -> None:
    """Close within `timeout_s`, abandoning records the broker did not take by then."""
    try:
        producer.close(timeout=timeout_s)
    except KafkaTimeoutError:
        # close() flushes first and raises when that times out, leaving its sender
        # thread running (kafka-python 3.0.12): abort what is unsent, then close.
        producer._sender.force_close()
        producer.close(timeout=0)


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
    """Holds a Kafka producer created on first use, so holders pickle into Ray workers.

    Every send's future is kept until `flush` has checked it: kafka-python's own
    flush() only logs a failed batch. A producer whose sends failed is closed (within
    the close timeout) and replaced by a new one on the next send.
    """

    def __init__(self, bootstrap: str, client: KafkaClientSettings = DEFAULT_CLIENT) -> None:
        self.bootstrap = bootstrap
        self.client = client
        self._producer: KafkaProducer | None = None
        self._sent: list[FutureRecordMetadata] = []

    def _send(self, topic: str, **record: Any) -> None:
        if self._producer is None:
            self._producer = make_producer(self.bootstrap, self.client)
        try:
            self._sent.append(self._producer.send(topic, **record))
        except KafkaError as exc:  # buffer full past max_block_ms, metadata unavailable
            self.close()
            raise DeliveryFailed(f"cannot send to {topic}: {exc}") from exc

    @property
    def unchecked(self) -> int:
        """Records sent and not yet checked by `flush`."""
        return len(self._sent)

    def flush(self) -> int:
        """Wait until every record sent since the last flush is acked; return how many.

        Raises DeliveryFailed when one failed or the wait passed its deadline; the
        records of that flush are then not known to be written, and the producer is
        replaced.
        """
        sent, self._sent = self._sent, []
        if self._producer is None:
            return 0
        try:
            self._producer.flush(timeout=self.client.flush_timeout_s)
        except KafkaError as exc:
            self.close()
            raise DeliveryFailed(f"{len(sent)} records not acked in time: {exc}") from exc
        failed = [f for f in sent if not f.is_done or f.failed()]
        if failed:
            self.close()
            first = failed[0].exception if failed[0].is_done else "no answer"
            raise DeliveryFailed(f"{len(failed)} of {len(sent)} records not written: {first}")
        return len(sent)

    def close(self) -> None:
        """Close the producer within the close timeout, abandoning what the broker did not
        take by then (and the futures not checked); the next send makes a new one."""
        producer, self._producer = self._producer, None
        self._sent = []
        if producer is not None:
            close_producer(producer, self.client.close_timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
