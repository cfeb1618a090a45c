"""Ingest freshness over a window of time, driven by a fake clock."""

from __future__ import annotations

import pytest

from jobs.ingest_freshness import FreshnessWindow
from tests.clock import ManualClock


def test_p99_and_rate_over_the_window_and_old_batches_age_out() -> None:
    clock = ManualClock(1000.0)
    window = FreshnessWindow(10.0, clock=clock)
    assert window.p99() is None and window.rate() == 0.0
    clock.now = 1002.0
    window.observe(10, [int((1002.0 - 0.5) * 1000)] * 10)  # written 0.5 s after the event
    assert window.p99() == pytest.approx(0.5)
    assert window.rate() == pytest.approx(10 / 2.0)  # the job has run 2 s, not 10
    clock.now = 1008.0
    window.observe(1, [int((1008.0 - 9.0) * 1000)])
    assert window.p99() == pytest.approx(0.5 + 0.9 * 8.5)  # 10 x 0.5 s and 1 x 9 s
    assert window.rate() == pytest.approx(11 / 8.0)
    clock.now = 1013.0  # the first batch is over 10 s old
    assert window.p99() == pytest.approx(9.0)
    assert window.rate() == pytest.approx(1 / 10.0)
    clock.now = 1019.0
    assert window.p99() is None and window.rate() == 0.0


def test_records_without_an_event_time_count_for_the_rate_only() -> None:
    clock = ManualClock(50.0)
    window = FreshnessWindow(5.0, clock=clock)
    clock.now = 55.0
    window.observe(3, [0, 0])  # two deletes without a time and a dead letter
    assert window.p99() is None
    assert window.rate() == pytest.approx(3 / 5.0)


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_s"):
        FreshnessWindow(0.0)
