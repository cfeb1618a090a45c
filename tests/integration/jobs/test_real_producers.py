"""Pins written by producers the project did not write: librdkafka (confluent-kafka) and
kafka-python in every codec Kafka supports, with headers, idempotent or not, several at
once, tombstones for deletes, transactions committed and aborted. Each test ends on the
oracle fold of what was produced."""

from __future__ import annotations

import threading
import zlib
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from kafka import KafkaProducer, TopicPartition

from conf.config import PinstreamConfig
from encoder.text_encoder import TextEncoder
from jobs.ingest import IngestJob
from streams.dead_letter import DeadLetter
from streams.events import PinEvent, encode_pin_event
from streams.kafka_io import assigned_consumer, committed_offsets, drain
from streams.synthetic import PinGenerator, malformed_events
from tests.integration.jobs.test_ingest import fold_log, oracle_fold
from tests.integration.jobs.test_ingest_faults import workload
from tests.integration.jobs.test_routed_ingest import (
    assert_shards_hold_the_oracle,
    routed_config,
    routed_workload,
)
from tests.integration.jobs.visual_workload import image_workload, visual_config

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
Record = tuple[bytes | None, bytes | None]


def as_record(event: PinEvent) -> Record:
    """Deletes go as tombstones (key = pin_id, value = null), the way CDC tools write them."""
    if event.op == "delete":
        return event.pin_id.encode(), None
    return encode_pin_event(event)


def librdkafka_producer(cfg: PinstreamConfig, codec: str, **extra: Any) -> Producer:
    settings = {
        "bootstrap.servers": cfg.broker.bootstrap,
        "compression.type": codec,
        "linger.ms": 5,
        "enable.idempotence": codec in ("snappy", "zstd"),
        **extra,
    }
    return Producer(settings)


def produce_librdkafka(producer: Producer, topic: str, records: list[Record]) -> None:
    failed: list[str] = []

    def check(error: Any, _message: Any) -> None:
        if error is not None:
            failed.append(str(error))

    for i, (key, value) in enumerate(records):
        headers = [("source", b"librdkafka"), ("seq", str(i).encode())] if i % 2 else None
        producer.produce(topic, key=key, value=value, headers=headers, on_delivery=check)
        producer.poll(0)
    try:
        assert producer.flush(30) == 0
        assert not failed, failed
    finally:
        producer.close()  # else it lingers, reconnecting to a broker the session stops


def produce_kafka_python(cfg: PinstreamConfig, codec: str, records: list[Record]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=cfg.broker.bootstrap,
        compression_type=None if codec == "none" else codec,
        linger_ms=5,
    )
    try:
        futures = [
            producer.send(cfg.topics.pins, key=key, value=value, headers=[("source", b"kp")])
            for key, value in records
        ]
        producer.flush(30)
        for future in futures:
            future.get(timeout=1)  # raises if a record was not written
    finally:
        producer.close(timeout=5)


def malformed_records() -> list[Record]:
    """The malformed events a producer can send (a record with neither key nor value is none)."""
    return [(key, value) for key, value, _ in malformed_events() if key is not None or value]


def poisoned(records: list[Record]) -> tuple[list[Record], list[Record]]:
    """`records` with every malformed record put in the middle, and those malformed records."""
    bad = malformed_records()
    middle = len(records) // 2
    return records[:middle] + bad + records[middle:], bad


def dead_letters_of(cfg: PinstreamConfig, bad: list[Record]) -> list[DeadLetter]:
    """cfg's dead letters, checked: each source record of `bad` once, each with its reason
    (a replayed batch may write a letter again, with the same source position)."""
    letters = [
        DeadLetter.from_json_bytes(r.value) for r in drain(cfg.broker.bootstrap, cfg.topics.dlq)
    ]
    by_source = {(letter.partition, letter.offset): letter for letter in letters}
    assert sorted(((letter.key, letter.value) for letter in by_source.values()), key=repr) == (
        sorted(bad, key=repr)
    )
    assert all(letter.reason for letter in letters)
    return letters


def test_every_codec_from_several_producers_at_once_with_poison_in_the_middle(
    cfg: PinstreamConfig, ray_session
) -> None:
    """Ten producers at once (librdkafka and kafka-python, each codec), each owning its pins
    so their order holds; malformed records mixed into every stream go to the DLQ."""
    events = workload("codec", 300)
    writers = [(library, codec) for library in ("librdkafka", "kafka-python") for codec in CODECS]
    per_writer: list[list[Record]] = [[] for _ in writers]
    for event in events:
        per_writer[zlib.crc32(event.pin_id.encode()) % len(writers)].append(as_record(event))
    bad = malformed_records()
    for i, (key, value) in enumerate(bad):
        share = per_writer[i % len(writers)]
        share.insert(len(share) // 2, (key, value))

    def produce(index: int) -> None:
        library, codec = writers[index]
        if library == "librdkafka":
            produce_librdkafka(librdkafka_producer(cfg, codec), cfg.topics.pins, per_writer[index])
        else:
            produce_kafka_python(cfg, codec, per_writer[index])

    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            produce(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors

    stats = IngestJob(cfg, idle_stop_s=3.0).run()

    assert stats.events == len(events) + len(bad)
    live, _ = fold_log(cfg)
    assert live == oracle_fold(events)
    assert len(dead_letters_of(cfg, bad)) == len(bad)  # a run without faults replays nothing


def test_aborted_transactions_are_not_indexed_and_commits_pass_their_markers(
    cfg: PinstreamConfig, ray_session
) -> None:
    generator = PinGenerator(seed=32, id_prefix="txn")
    kept, aborted, later = generator.pins(40), generator.pins(20, start=40), generator.pins(30, 60)
    rewrite = [generator.updated(p).event for p in kept[:5]]  # aborted: must not win
    producer = librdkafka_producer(cfg, "zstd", **{"transactional.id": f"tx-{cfg.topics.pins}"})
    producer.init_transactions(30)
    for batch, commit in ((kept, True), (aborted, False), (later, True)):
        producer.begin_transaction()
        records = [encode_pin_event(p.event) for p in batch]
        if not commit:
            records += [encode_pin_event(event) for event in rewrite]
        for key, value in records:
            producer.produce(cfg.topics.pins, key=key, value=value)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    producer.close()

    stats = IngestJob(cfg, idle_stop_s=3.0).run()

    indexed = [p.event for p in kept + later]
    assert stats.events == len(indexed)
    live, _ = fold_log(cfg)
    assert live == oracle_fold(indexed)
    # Every record read lies below the committed offset: the aborted records and the
    # transaction markers between them left gaps that the commit stepped over.
    committed = committed_offsets(cfg.broker.bootstrap, cfg.ingest.consumer_group, cfg.topics.pins)
    last: dict[int, int] = {}
    for record in drain(cfg.broker.bootstrap, cfg.topics.pins):
        last[record.partition] = max(last.get(record.partition, -1), record.offset)
    assert all(committed[p] > offset for p, offset in last.items()), (committed, last)
    with assigned_consumer(cfg.broker.bootstrap) as consumer:
        tps = [TopicPartition(cfg.topics.pins, p) for p in committed]
        gaps = sum(consumer.end_offsets(tps).values()) > len(indexed)
    assert gaps, "the broker wrote no transaction markers: this test checks nothing"


def test_image_pins_from_librdkafka_in_every_codec_are_embedded_from_their_pictures(
    cfg: PinstreamConfig, ray_session, tmp_path: Path
) -> None:
    """Image pins (file:// pictures, updates, tombstone deletes) from one librdkafka producer
    per codec, each owning its pins, through the image stage and a CLIP embedder."""
    cfg = visual_config(cfg, tmp_path)
    events = image_workload("imgcodec", 120, tmp_path)
    per_codec: list[list[Record]] = [[] for _ in CODECS]
    for event in events:
        per_codec[zlib.crc32(event.pin_id.encode()) % len(CODECS)].append(as_record(event))
    for codec, records in zip(CODECS, per_codec, strict=True):
        produce_librdkafka(librdkafka_producer(cfg, codec), cfg.topics.pins, records)

    stats = IngestJob(cfg, idle_stop_s=3.0).run()

    assert (stats.events, stats.dead_letters) == (len(events), 0)
    live, _ = fold_log(cfg)
    assert live == oracle_fold(events)


def test_routed_pins_from_librdkafka_move_shard_and_tombstones_delete_them(
    broker, ray_session, text_encoder: TextEncoder
) -> None:
    """Centroid routing under a librdkafka producer (zstd, idempotent): edits that move pins
    between shards, tombstone deletes, poison in the middle; one shard holds each live pin."""
    cfg = routed_config(broker.bootstrap)
    routed = routed_workload(cfg, "rdkroute", text_encoder)
    records, bad = poisoned([as_record(event) for event in routed.events])
    produce_librdkafka(librdkafka_producer(cfg, "zstd"), cfg.topics.pins, records)

    stats = IngestJob(cfg, idle_stop_s=2.0).run()

    assert (stats.events, stats.dead_letters) == (len(records), len(bad))
    assert_shards_hold_the_oracle(cfg, routed)
    assert len(dead_letters_of(cfg, bad)) == len(bad)
