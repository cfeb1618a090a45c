"""The ingest job's scaling state: what it writes and measures sets the pool's floor and the
report; a fake clock drives it (no Ray, no sleeps)."""

from __future__ import annotations

from conf.config import IngestConfig
from jobs.embedder_pool import EmbedderPool
from jobs.ingest_scaling import STEER_EVERY_S, IngestScaling
from tests.clock import ManualClock

SETTINGS = IngestConfig(
    embedders_min=1,
    embedders_max=3,
    freshness_slo_p99_s=3.0,
    freshness_window_s=10.0,
    pool_upscale_delay_s=1.0,
    pool_downscale_delay_s=2.0,
)


def scaling(clock: ManualClock, settings: IngestConfig = SETTINGS) -> IngestScaling:
    pool = EmbedderPool("MapBatches(Embedder)", 1, 3, backlog_delay_s=1.0)
    return IngestScaling(settings, pool, clock=clock)


def late_batch(clock: ManualClock, job: IngestScaling, age_s: float = 8.0) -> None:
    job.written(4, [int((clock.now - age_s) * 1000)] * 4)


def raised_to_two(clock: ManualClock) -> IngestScaling:
    """A job whose late writes have just raised the floor to 2 (its delay restarting)."""
    job = scaling(clock)
    late_batch(clock, job)
    job.steer()
    clock.now += 1.0
    assert job.steer() is not None and job.pool.floor == 2
    return job


def test_late_writes_raise_the_floor_and_the_report_says_why() -> None:
    clock = ManualClock(1000.0)
    job = scaling(clock)
    late_batch(clock, job)
    assert job.steer() is None  # the breach has to last the upscale delay
    clock.now += 1.0
    late_batch(clock, job)
    up = job.steer()
    assert up is not None and (up.action, up.floor, up.cause) == ("up", 2, "freshness")
    assert job.pool.floor == 2 and job.last_decision == up
    report = job.report()
    assert (report.floor, report.min_size, report.max_size, report.slo_p99_s) == (2, 1, 3, 3.0)
    assert report.freshness_p99_s is not None and report.freshness_p99_s > 7.9
    assert report.decision is not None and report.decision.startswith("up to 2 actors")
    assert report.decided_at == clock.now


def test_the_rule_runs_at_most_every_half_second() -> None:
    clock = ManualClock(1000.0)
    job = raised_to_two(clock)
    clock.now += 1.0 + STEER_EVERY_S / 2
    assert job.steer() is not None  # the breach lasted the delay again: up to 3
    assert job.pool.floor == 3
    clock.now += STEER_EVERY_S / 2
    assert job.steer() is None  # too soon after the last run


def test_an_idle_stream_brings_the_floor_back_after_the_downscale_delay() -> None:
    clock = ManualClock(1000.0)
    job = raised_to_two(clock)
    clock.now += 11.0  # the late batches left the window: nothing written is well within
    assert job.steer() is None
    clock.now += 2.0
    down = job.steer()
    assert down is not None and (down.action, down.floor) == ("down", 1)
    assert job.pool.floor == 1 and job.report().freshness_p99_s is None


def test_lag_with_nothing_written_reads_as_stalled_and_breaks_the_slo() -> None:
    clock = ManualClock(1000.0)
    job = scaling(clock)
    job.measured_lag({0: 50, 1: 0})
    assert job.lag == {0: 50, 1: 0}
    assert job.report().lag_s is None  # stalled: records wait, none are written
    job.steer()
    clock.now += 1.0
    up = job.steer()
    assert up is not None and up.cause == "lag"
    job.written(50, [])
    assert job.lag_s() == 1.0  # 50 records behind, 50 written in the job's first second


def test_no_slo_leaves_the_floor_at_the_minimum() -> None:
    clock = ManualClock(1000.0)
    job = scaling(clock, IngestConfig(embedders_min=1, embedders_max=3, freshness_slo_p99_s=0))
    for _ in range(10):
        late_batch(clock, job, age_s=60.0)
        clock.now += 1.0
        assert job.steer() is None
    assert job.pool.floor == 1
    assert job.report().slo_p99_s == 0
