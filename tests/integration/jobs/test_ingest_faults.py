"""Crashes of every ingest process lose no pin and double none: each test ends with the
searchable set (or the log's fold) compared to the oracle fold of the event log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from ray import serve

from conf.config import PinstreamConfig, save_config
from jobs.ingest import IngestJob
from serve.app import build_app
from streams.events import PinEvent
from streams.kafka_io import committed_offsets, drain
from streams.producer import PinProducer
from streams.synthetic import PinGenerator, malformed_events
from tests.integration.jobs.test_ingest import fold_log, oracle_fold
from tests.waiting import wait_until


def workload(prefix: str, count: int) -> list[PinEvent]:
    """Upserts, then updates of some and deletes of others: the oracle must track all three."""
    generator = PinGenerator(seed=21, id_prefix=prefix)
    pins = generator.pins(count)
    events = [p.event for p in pins]
    events += [generator.updated(p).event for p in pins[: count // 10]]
    events += [generator.delete(p.event.pin_id) for p in pins[count // 10 : count // 5]]
    return events


def produce(cfg: PinstreamConfig, events: list[PinEvent]) -> None:
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        producer.send_all(events)


def committed_total(cfg: PinstreamConfig) -> int:
    offsets = committed_offsets(cfg.broker.bootstrap, cfg.ingest.consumer_group, cfg.topics.pins)
    return sum(offsets.values())


def ingest_process(config: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "--config", str(config), "ingest", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: kill -9 takes its local Ray down too
    )


def test_kill_9_of_the_ingest_job_loses_and_doubles_nothing(
    cfg: PinstreamConfig, tmp_path: Path
) -> None:
    events = workload("k9", 300)
    produce(cfg, events)
    config = tmp_path / "ingest.yaml"
    save_config(cfg, config)

    first = ingest_process(config)
    try:
        wait_until(lambda: committed_total(cfg) > 100, 180, "first commits")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert committed_total(cfg) < len(events), "killed too late to test a resume"

    second = ingest_process(config, "--until-idle", "3")
    try:
        assert second.wait(timeout=300) == 0
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    live, rows = fold_log(cfg)
    assert live == oracle_fold(events)
    assert rows >= len(events)  # at least once: a replayed suffix is allowed, and harmless
    assert committed_total(cfg) == len(events)


def test_a_burst_of_malformed_events_goes_to_the_dlq(cfg: PinstreamConfig, ray_session) -> None:
    events = workload("burst", 120)
    bad = malformed_events() * 10
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        producer.send_all(events[:60])
        for key, value, _ in bad:
            producer.send_raw(key, value)
        producer.send_all(events[60:])
    stats = IngestJob(cfg, idle_stop_s=2.0).run()
    assert stats.dead_letters == len(bad)
    assert len(drain(cfg.broker.bootstrap, cfg.topics.dlq)) == len(bad)
    live, _ = fold_log(cfg)
    assert live == oracle_fold(events)


def actor_pids(fragment: str) -> list[int]:
    """Pids of Ray actor processes whose title (`ray::ClassName...`) contains `fragment`."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True
    )
    pids = []
    for line in listing.stdout.splitlines():
        pid, _, args = line.strip().partition(" ")
        if args.startswith("ray::") and fragment in args:
            pids.append(int(pid))
    return pids


def test_killing_an_embedder_actor_mid_batch(cfg: PinstreamConfig, ray_session) -> None:
    events = workload("emb", 500)
    produce(cfg, events)
    job = IngestJob(cfg, idle_stop_s=3.0)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(stats=job.run()))
    runner.start()
    wait_until(lambda: job.stats.events > 64, 180, "first batches")
    pids = actor_pids("Embedder")
    assert pids, "no embedder actor found"
    os.kill(pids[0], signal.SIGKILL)
    runner.join(timeout=300)
    assert not runner.is_alive()
    live, _ = fold_log(cfg)
    assert live == oracle_fold(events)


def test_a_killed_shard_replica_is_replaced_and_rebuilt(
    cfg: PinstreamConfig, serve_url: str
) -> None:
    events = workload("rep", 300)
    produce(cfg, events)
    expected = oracle_fold(events)
    prefix = f"/{cfg.serve.app_name}"
    # The app starts while ingest runs (the replicas tail the log as it grows), as in the stack.
    serve.run(build_app(cfg), name=cfg.serve.app_name, route_prefix=prefix, blocking=False)
    url = f"{serve_url}{prefix}"
    try:
        IngestJob(cfg, idle_stop_s=2.0).run()

        def indexed() -> int:
            try:
                response = requests.get(f"{url}/healthz", timeout=5)
                return int(response.json()["pins"]) if response.status_code == 200 else -1
            except (requests.RequestException, ValueError, KeyError):
                return -1

        wait_until(lambda: indexed() == len(expected), 120, "all pins indexed")
        pids = actor_pids(f"{cfg.serve.app_name}:shard-0")
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)
        statuses = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # a query burst while Serve replaces the replica
            response = requests.post(f"{url}/v1/search", json={"text": "sofa", "k": 5}, timeout=30)
            statuses.append((response.status_code, response.json().get("partial")))
            if indexed() == len(expected) and actor_pids(f"{cfg.serve.app_name}:shard-0"):
                break
        assert all(code == 200 for code, _ in statuses), statuses
        wait_until(lambda: indexed() == len(expected), 120, "replica rebuilt")
        body = requests.post(
            f"{url}/v1/search", json={"text": "sofa", "k": 1000}, timeout=30
        ).json()
        assert body["partial"] is False
        assert {r["pin_id"]: r["title"] for r in body["results"]} == expected
    finally:
        serve.delete(cfg.serve.app_name)


def test_backpressure_with_a_tiny_budget_drops_nothing(cfg: PinstreamConfig, ray_session) -> None:
    """A backlog far above the in-flight budget: reads pause and resume, every pin arrives."""
    events = workload("bp", 600)
    produce(cfg, events)
    tight = cfg.with_value("ingest.max_inflight_mib", 1).with_value(
        "ingest.max_batches_per_actor", 1
    )
    stats = IngestJob(tight, idle_stop_s=3.0).run()
    assert stats.events == len(events)
    live, _ = fold_log(cfg)
    assert live == oracle_fold(events)
