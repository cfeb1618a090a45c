"""Network faults between the stack and the broker, through a loopback TCP proxy that the
broker advertises (so every client goes through it): a black hole longer than the
producer's delivery timeout, and connection resets mid-stream. Nothing lost, nothing
doubled, and ingest resumes by itself. Each test ends on the oracle fold."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from conf.config import PinstreamConfig
from encoder.text_encoder import TextEncoder
from jobs.ingest import IngestJob
from streams.events import encode_pin_event
from streams.ingest_health import read_health
from streams.local_broker import LocalBroker
from streams.producer import PinProducer
from tests.integration.conftest import SHORT_TIMEOUTS
from tests.integration.jobs.test_ingest import fold_log, oracle_fold
from tests.integration.jobs.test_ingest_faults import committed_total, workload
from tests.integration.jobs.test_real_producers import Record, dead_letters_of, poisoned
from tests.integration.jobs.test_routed_ingest import (
    assert_shards_hold_the_oracle,
    routed_config,
    routed_workload,
)
from tests.integration.jobs.visual_workload import image_workload, visual_config
from tests.integration.tcp_proxy import TcpProxy
from tests.waiting import wait_until

OUTAGE_S = 6.0  # twice broker.delivery_timeout_ms of the `faulty` config: every write fails
# After the network heals, ingest is back within: a backoff (2 s), a failed client's
# request timeout (2 s), and a new pipeline's start (the encoder loads again, ~10 s here).
RESUME_BOUND_S = 60.0


def run_in_background(job: IngestJob) -> threading.Thread:
    runner = threading.Thread(target=job.run, name="ingest-under-test", daemon=True)
    runner.start()
    return runner


def test_a_black_hole_longer_than_the_delivery_timeout_loses_nothing(
    faulty: tuple[TcpProxy, PinstreamConfig], ray_session
) -> None:
    proxy, cfg = faulty
    before, after = workload("bh", 400), workload("bh2", 100)
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        producer.send_all(before)
    job = IngestJob(cfg)
    runner = run_in_background(job)
    try:
        wait_until(lambda: job.stats.committed and job.stats.events > 64, 180, "first commits")
        proxy.blackhole()
        wait_until(lambda: job.health.state == "retrying", 60, "ingest reports retrying")
        assert read_health(cfg.storage.root).state == "retrying"  # what /healthz shows
        time.sleep(OUTAGE_S)  # the outage itself: longer than the delivery timeout
        assert sum(job.stats.committed.values()) < len(before), "done before the outage"
        proxy.heal()
        healed = time.monotonic()
        with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
            producer.send_all(after)
        total = len(before) + len(after)
        wait_until(lambda: committed_total(cfg) == total, RESUME_BOUND_S + 120, "all committed")
        assert job.health.state == "running"
        resumed_within = time.monotonic() - healed
    finally:
        job.stop()
        runner.join(timeout=60)
    assert not runner.is_alive()
    assert job.stats.retries >= 1
    live, _ = fold_log(cfg)
    assert live == oracle_fold(before + after)  # nothing lost; replays change nothing
    print(f"ingest resumed and caught up {resumed_within:.1f}s after the network healed")


def ingest_through_resets(
    proxy: TcpProxy,
    cfg: PinstreamConfig,
    records: list[Record],
    every: int,
    while_running: Callable[[], None] = lambda: None,
) -> None:
    """Run the ingest job while `records` are produced `every` at a time, the proxy resetting
    every client's connections (the job's included) after each lot; return once all are
    committed and `while_running` has checked the running job."""
    job = IngestJob(cfg)
    runner = run_in_background(job)
    try:
        with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
            for start in range(0, len(records), every):
                for key, value in records[start : start + every]:
                    producer.send_raw(key, value)
                producer.flush()
                proxy.reset()
        wait_until(lambda: committed_total(cfg) == len(records), 240, "all committed")
        while_running()
    finally:
        job.stop()
        runner.join(timeout=60)
    assert proxy.connections > 5


def test_connection_resets_mid_stream_lose_nothing(
    faulty: tuple[TcpProxy, PinstreamConfig], ray_session
) -> None:
    proxy, cfg = faulty
    events = workload("rst", 500)
    ingest_through_resets(proxy, cfg, [encode_pin_event(event) for event in events], 100)
    live, _ = fold_log(cfg)
    assert live == oracle_fold(events)


def test_connection_resets_with_images_and_a_pool_of_two_lose_nothing(
    faulty: tuple[TcpProxy, PinstreamConfig], ray_session, tmp_path: Path
) -> None:
    """The same resets with image pins, a CLIP embedder and a pool that may grow to two: the
    picture fetches, the pool's moves and the floor ride them out, and the job says so."""
    proxy, cfg = faulty
    cfg = visual_config(cfg, tmp_path).with_values(
        {"ingest.embedders_max": 2, "ingest.embedder_num_cpus": 0.25}
    )
    events = image_workload("rsti", 300, tmp_path)

    def reported_every_event() -> bool:  # the report is written every few seconds
        health = read_health(cfg.storage.root)
        return health is not None and health.events == len(events)

    def the_job_reports_every_event_and_the_pool() -> None:
        wait_until(reported_every_event, 30, "the job's report of every event")
        health = read_health(cfg.storage.root)
        assert health is not None and health.state == "running" and health.pool is not None
        assert (health.pool.min_size, health.pool.max_size) == (1, 2)
        assert health.dead_letters == 0

    records = [encode_pin_event(event) for event in events]
    ingest_through_resets(proxy, cfg, records, 60, the_job_reports_every_event_and_the_pool)
    live, _ = fold_log(cfg)
    assert live == oracle_fold(events)


def test_connection_resets_with_centroid_routing_lose_nothing(
    proxied_broker: tuple[TcpProxy, LocalBroker], ray_session, text_encoder: TextEncoder
) -> None:
    """The same resets with pins routed by centroid: the tombstones a move writes on the shard
    a pin leaves, the deletes on every shard and the dead letters all ride them out."""
    proxy, broker = proxied_broker
    proxy.heal()
    cfg = routed_config(broker.bootstrap).with_values(SHORT_TIMEOUTS)
    routed = routed_workload(cfg, "rstroute", text_encoder)
    records, bad = poisoned([encode_pin_event(event) for event in routed.events])
    ingest_through_resets(proxy, cfg, records, 40)
    assert_shards_hold_the_oracle(cfg, routed)
    dead_letters_of(cfg, bad)  # replays after a reset may write a letter twice
