"""The embedder pool on the local Ray: it grows on a backlog, or on late events before any
backlog (the freshness rule), and shrinks when the stream is idle; the embeddings log still
equals the fold of the events.

The session's Ray has 2 logical CPUs; embedders of 0.25 CPU leave room for three. Actors are
counted twice: by the job's own report (Ray Data's pool) and by Ray's actor table, so an
actor the pool let go but that still lives would show.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import ray._private.state

from conf.config import PinstreamConfig
from jobs.embedder_pool import PoolSize
from jobs.ingest import EMBEDDER_OPERATOR, IngestJob, IngestStats
from streams.events import PinEvent, now_ms
from streams.ingest_health import read_health
from streams.local_broker import LocalBroker
from streams.producer import PinProducer
from streams.synthetic import PinGenerator
from tests.integration.conftest import unique_config
from tests.integration.jobs.test_ingest import fold_log, oracle_fold
from tests.integration.serve.test_query_api import prometheus_lines
from tests.waiting import holds, wait_until

SMALL_POOL = {
    "ingest.embedders_min": 1,
    "ingest.embedder_num_cpus": 0.25,
    "ingest.pool_upscale_delay_s": 1.0,
}


# Prometheus series (by Ray's metrics agent, prefixed ray_) and tags each must carry.
UP_METRICS = {
    "ray_pinstream_ingest_pool_decisions_total": ('action="up"', 'cause="freshness"'),
    "ray_pinstream_ingest_pool_last_decision_timestamp_seconds": ('action="up"',),
    "ray_pinstream_ingest_freshness_slo_seconds": (),
    "ray_pinstream_ingest_freshness_p99_seconds": (),
    "ray_pinstream_ingest_lag_seconds": (),
    "ray_pinstream_ingest_pool_actors": ('state="floor"',),
}
DOWN_METRICS = {"ray_pinstream_ingest_pool_decisions_total": ('action="down"', 'cause="within"')}


def exported(lines: list[str], topic: str, wanted: dict[str, tuple[str, ...]]) -> bool:
    """Whether every wanted series of `topic` is among Prometheus's `lines`."""
    return all(
        any(
            line.startswith(name) and all(tag in line for tag in (f'topic="{topic}"', *tags))
            for line in lines
        )
        for name, tags in wanted.items()
    )


def alive_embedders() -> int:
    """Embedder actors that Ray's actor table holds alive (the state API, ray.util.state,
    needs the dashboard, which the test Ray runs without)."""
    actors = ray._private.state.actors().values()
    name = f"MapWorker({EMBEDDER_OPERATOR})"
    return sum(1 for a in actors if a["State"] == "ALIVE" and a["ActorClassName"] == name)


@contextmanager
def running(job: IngestJob) -> Iterator[list[IngestStats]]:
    """The job in a thread; on leaving, it drains the stream and stops (its stats appear)."""
    result: list[IngestStats] = []
    thread = threading.Thread(target=lambda: result.append(job.run()), daemon=True)
    thread.start()
    try:
        yield result
    finally:
        job.stop(drain_s=30.0)
        thread.join(60.0)
    assert not thread.is_alive(), "the ingest job did not stop"


def test_the_pool_grows_on_a_backlog_and_shrinks_on_an_idle_stream(
    cfg: PinstreamConfig, ray_session
) -> None:
    cfg = cfg.with_values(
        {**SMALL_POOL, "ingest.embedders_max": 3, "ingest.freshness_slo_p99_s": 0.0}
    )
    generator = PinGenerator(seed=23, id_prefix="pool")
    pins = generator.pins(400)
    events = [p.event for p in pins]
    events += [generator.updated(p).event for p in pins[:30]]
    events += [generator.delete(p.event.pin_id) for p in pins[30:50]]
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        producer.send_all(events)
    job = IngestJob(cfg)
    with running(job) as result:
        wait_until(
            lambda: job.scaling.pool.size.running >= 2 and alive_embedders() >= 2,
            120,
            "a second embedder on the backlog",
        )
        grew = job.scaling.pool.last_move
        assert grew is not None and grew.delta > 0 and "utilization" in grew.reason, grew
        wait_until(lambda: job.stats.events == len(events), 120, "every event ingested")
        # Idle now: only empty heartbeat batches flow, and Ray Data removes idle actors
        # (10 s after it last grew the pool).
        wait_until(
            lambda: job.scaling.pool.size == PoolSize(1, 0) and alive_embedders() == 1,
            60,
            "the idle pool back at one actor",
        )
        shrank = job.scaling.pool.last_move
        assert shrank is not None and shrank.delta < 0, shrank
        holds(lambda: job.scaling.pool.size == PoolSize(1, 0), 6.0, "an idle pool of one")
    live, rows = fold_log(cfg)
    assert live == oracle_fold(events)
    assert rows == len(events)  # nothing lost, nothing doubled
    assert result[0].events == len(events)


def test_late_events_grow_the_pool_before_a_backlog_then_it_shrinks_back(
    broker: LocalBroker, ray_session
) -> None:
    # One partition: its batch a second (a pin or a heartbeat) keeps one actor of this slow
    # machine well below full, so Ray Data's own rule has no backlog to grow on.
    cfg = unique_config(broker.bootstrap, partitions=1).with_values(
        {
            **SMALL_POOL,
            "ingest.embedders_max": 2,
            "ingest.freshness_slo_p99_s": 3.0,
            "ingest.freshness_window_s": 3.0,
            "ingest.pool_downscale_delay_s": 2.0,
        }
    )
    job = IngestJob(cfg)
    generator = PinGenerator(seed=29, id_prefix="late")
    sent: list[PinEvent] = []
    quiet = threading.Event()

    def trickle() -> None:
        """A pin a second, each 10 s old: a producer behind, a stream with no backlog."""
        with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
            while not quiet.wait(1.0):
                pin = generator.pins(1, start=len(sent), event_time=now_ms() - 10_000)[0]
                producer.send(pin.event)
                producer.flush()
                sent.append(pin.event)

    with running(job) as result:
        wait_until(lambda: job.scaling.pool.size == PoolSize(1, 0), 120, "the first embedder ready")
        producing = threading.Thread(target=trickle, daemon=True)
        producing.start()
        try:
            wait_until(
                lambda: job.scaling.pool.size.running == 2 and alive_embedders() == 2,
                120,
                "a second embedder on late events",
            )
            up = job.scaling.last_decision
            assert up is not None and (up.action, up.cause, up.floor) == ("up", "freshness", 2)
            grew = job.scaling.pool.last_move
            assert grew is not None and "floor of 2" in grew.reason, grew  # not utilisation
            health = read_health(cfg.storage.root)
            assert health is not None and health.pool is not None
            assert health.pool.slo_p99_s == 3.0 and health.pool.floor == 2
            assert health.pool.decision is not None and "freshness p99" in health.pool.decision
            assert sum(health.lag.values()) < 30, health.lag  # no backlog to speak of
            # While late pins flow (the freshness gauge is only set while there is one).
            wait_until(
                lambda: exported(prometheus_lines(), cfg.topics.pins, UP_METRICS),
                60,
                "the pool's metrics in Prometheus",
            )
        finally:
            quiet.set()
            producing.join(10.0)
        # Fresh again (nothing late written for the window): the floor drops after the
        # downscale delay, and Ray Data removes the idle actor above it.
        wait_until(
            lambda: job.scaling.pool.size == PoolSize(1, 0) and alive_embedders() == 1,
            60,
            "the pool back at one actor",
        )
        down = job.scaling.last_decision
        assert down is not None and (down.action, down.floor) == ("down", 1), down
        health = read_health(cfg.storage.root)
        assert health is not None and health.pool is not None
        assert health.pool.decision is not None and health.pool.decision.startswith("down to 1")
        wait_until(
            lambda: exported(prometheus_lines(), cfg.topics.pins, DOWN_METRICS),
            60,
            "the floor's move down in Prometheus",
        )
    live, rows = fold_log(cfg)
    assert live == oracle_fold(sent)
    assert rows == len(sent)
    assert result[0].events == len(sent)
