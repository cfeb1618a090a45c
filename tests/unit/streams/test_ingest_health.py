"""The ingest job's health document: written whole, read back, stale when not updated."""

from pathlib import Path

from streams.ingest_health import (
    HEALTH_FILE,
    STALE_AFTER_S,
    IngestHealth,
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
