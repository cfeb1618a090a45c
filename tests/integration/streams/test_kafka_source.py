"""The Ray Data Kafka source reads each partition from its own offset, on a real broker."""

from __future__ import annotations

import threading

import pyarrow as pa
import ray

from conf.config import PinstreamConfig
from streams.kafka_source import KafkaSource
from streams.poll_batch import unpack
from streams.producer import PinProducer
from streams.synthetic import PinGenerator


def produce_numbered(cfg: PinstreamConfig, count: int) -> None:
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        for i in range(count):
            producer.send_raw(f"k{i}".encode(), f"v{i}".encode())
        producer.flush()


def read_all(cfg: PinstreamConfig, start: dict[int, int], max_poll_records: int = 7) -> pa.Table:
    source = KafkaSource(
        cfg.broker.bootstrap,
        cfg.topics.pins,
        start,
        max_poll_records=max_poll_records,
        idle_stop_s=1.0,
    )
    ray.data.DataContext.get_current().target_max_block_size = 1
    polls = ray.data.read_datasource(source).take_all()
    return unpack(pa.Table.from_pylist(polls))


def test_each_partition_resumes_from_its_own_offset(cfg: PinstreamConfig, ray_session) -> None:
    produce_numbered(cfg, 90)
    everything = read_all(cfg, {0: 0, 1: 0, 2: 0})
    assert sorted(everything.column("value").to_pylist()) == sorted(
        f"v{i}".encode() for i in range(90)
    )
    per_partition = {
        p: sorted(
            o
            for q, o in zip(
                everything["partition"].to_pylist(), everything["offset"].to_pylist(), strict=True
            )
            if q == p
        )
        for p in range(3)
    }
    assert all(offsets == list(range(len(offsets))) for offsets in per_partition.values())

    start = {0: 3, 1: 0, 2: len(per_partition[2])}  # partition 2: nothing left to read
    resumed = read_all(cfg, start)
    got = {
        (p, o)
        for p, o in zip(
            resumed["partition"].to_pylist(), resumed["offset"].to_pylist(), strict=True
        )
    }
    expected = {(p, o) for p, offsets in per_partition.items() for o in offsets if o >= start[p]}
    assert got == expected


def test_polls_are_capped_at_max_poll_records(cfg: PinstreamConfig, ray_session) -> None:
    produce_numbered(cfg, 40)
    source = KafkaSource(
        cfg.broker.bootstrap,
        cfg.topics.pins,
        {0: 0, 1: 0, 2: 0},
        max_poll_records=5,
        idle_stop_s=1.0,
    )
    ray.data.DataContext.get_current().target_max_block_size = 1
    polls = ray.data.read_datasource(source).take_all()
    sizes = [len(p["offset"]) for p in polls]
    assert sum(sizes) == 40
    assert max(sizes) <= 5


def batches_read(cfg: PinstreamConfig, max_poll_records: int, budget_ms: int) -> list[pa.Table]:
    """Every non-empty poll batch of all partitions, read until the stream is idle for 1.5 s."""
    source = KafkaSource(
        cfg.broker.bootstrap,
        cfg.topics.pins,
        {0: 0, 1: 0, 2: 0},
        max_poll_records=max_poll_records,
        idle_stop_s=1.5,
        batch_budget_ms=budget_ms,
    )
    ray.data.DataContext.get_current().target_max_block_size = 1
    polls = ray.data.read_datasource(source).take_all()
    batches = [unpack(pa.Table.from_pylist([p])) for p in polls]
    return [b for b in batches if b.num_rows]


def test_a_backlog_fills_every_batch_under_a_latency_budget(
    cfg: PinstreamConfig, ray_session
) -> None:
    produce_numbered(cfg, 60)
    batches = batches_read(cfg, max_poll_records=6, budget_ms=250)
    assert sum(b.num_rows for b in batches) == 60
    for partition in range(3):
        sizes = [b.num_rows for b in batches if b["partition"][0].as_py() == partition]
        assert sizes[:-1] == [6] * (len(sizes) - 1), sizes  # all full but the partition's last


def test_a_slow_stream_gets_small_batches_under_a_latency_budget(
    cfg: PinstreamConfig, ray_session
) -> None:
    count = 32

    def trickle() -> None:  # 4 s of ~1 record per partition per budget
        events = (p.event for p in PinGenerator(seed=3, id_prefix="slow").pins(count))
        with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
            producer.send_all(events, rate=8.0)

    producing = threading.Thread(target=trickle)
    producing.start()
    batches = batches_read(cfg, max_poll_records=64, budget_ms=250)
    producing.join(timeout=30)
    assert sum(b.num_rows for b in batches) == count
    # A partition's first batch holds what arrived before its read task started. After it,
    # under a fixed count every batch would wait for 64; under the budget none holds much
    # more than a budget's share of its partition's stream (slack for a slow machine).
    later = []
    for partition in range(3):
        sizes = [b.num_rows for b in batches if b["partition"][0].as_py() == partition]
        later.extend(sizes[1:])
    assert later and max(later) <= 6, later
    assert len(later) >= count // 4
