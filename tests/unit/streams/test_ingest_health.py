"""The ingest job's health document: written whole, read back, stale when not updated."""

from pathlib import Path

from streams.ingest_health import (
    HEALTH_FILE,
    STALE_AFTER_S,
    IngestHealth,
    PoolReport,
    read_health,
    write_health,
)


def test_round_trip(tmp_path: Path) -> None:
    health = IngestHealth(
        "retrying", "CheckpointFailed: not committed", retries=3, committed={0: 7}
    )
    write_health(str(tmp_path), health)
    assert read_health(str(tmp_path)) == health


def test_no_job_has_reported(tmp_path: Path) -> None:
    assert read_health(str(tmp_path)) is None


def test_an_unreadable_document_reads_as_stopped_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / HEALTH_FILE).parent.mkdir(parents=True)
    (tmp_path / HEALTH_FILE).write_text("{half a docu")
    health = read_health(str(tmp_path))
    assert health is not None and health.state == "stopped"
    assert health.reason is not None and "unreadable" in health.reason


def test_a_job_that_stopped_reporting_is_stale_but_a_stopped_one_is_not() -> None:
    running = IngestHealth("running", updated=1000.0)
    assert running.summary(now=1000.0 + STALE_AFTER_S - 1)["stale"] is False
    assert running.summary(now=1000.0 + STALE_AFTER_S + 1)["stale"] is True
    stopped = IngestHealth("stopped", "stream idle", updated=1000.0)
    assert stopped.summary(now=1e9)["stale"] is False


POOL = PoolReport(
    running=2,
    pending=1,
    floor=3,
    min_size=1,
    max_size=4,
    slo_p99_s=3.0,
    freshness_p99_s=4.25,
    lag_s=None,
    decision="up to 3 actors: freshness p99 4.25 s > SLO 3 s for 5.0 s",
    decided_at=990.0,
    move="+1 actors: below the job's floor of 3 actors",
    moved_at=995.0,
)


def test_the_pool_and_the_lag_round_trip(tmp_path: Path) -> None:
    health = IngestHealth("running", lag={0: 12, 3: 0}, pool=POOL)
    write_health(str(tmp_path), health)
    assert read_health(str(tmp_path)) == health


def test_the_pool_report_says_target_figures_size_and_last_moves() -> None:
    lines = POOL.describe(now=1000.0)
    assert lines == [
        "embedder pool: 2 running, 1 starting (floor 3, bounds 1..4); "
        "freshness p99 4.25 s, lag stalled (SLO p99 <= 3 s)",
        "last floor move: up to 3 actors: freshness p99 4.25 s > SLO 3 s for 5.0 s (10 s ago)",
        "last pool move: +1 actors: below the job's floor of 3 actors (5 s ago)",
    ]
    quiet = PoolReport(1, 0, 1, 1, 1, 0.0, None, 0.0)
    assert quiet.describe(now=0.0) == [
        "embedder pool: 1 running, 0 starting (floor 1, bounds 1..1); "
        "freshness p99 -, lag 0.00 s (no SLO)"
    ]
