"""When a shard replica counts as caught up with its log partition."""

from __future__ import annotations

import pytest

from shards.readiness import END_REFRESH_S, CatchUp, caught_up
from tests.clock import ManualClock


@pytest.mark.parametrize(
    ("position", "end", "idle_for", "max_lag", "expected"),
    [
        (0, 0, 0.0, 0, True),  # an empty partition
        (10, 10, 0.0, 0, True),  # at an exact end offset
        (9, 10, 5.0, 0, False),  # behind, however long it has been idle
        (9, 10, 0.0, 1, True),  # within the allowed lag
        (90, 100, 0.0, 5, False),
        # Read past the reported end (the local broker's end lags): only idleness proves it.
        (64, 1, 0.0, 0, False),
        (64, 1, 0.4, 0, False),
        (64, 1, 0.5, 0, True),
    ],
)
def test_caught_up(position: int, end: int, idle_for: float, max_lag: int, expected: bool) -> None:
    assert caught_up(position, end, idle_for, max_lag, idle_s=0.5) is expected


def test_catch_up_past_a_lagging_end_waits_for_an_idle_window() -> None:
    clock, reads = ManualClock(), []

    def end_offset() -> int:
        reads.append(clock.now)
        return 1  # the local broker: base offset of the last batch + 1

    catch_up = CatchUp(end_offset, max_lag=0, idle_s=0.5, clock=clock)
    clock.now += 0.1
    assert not catch_up.after_poll(64, got_records=True)
    assert len(reads) == 1  # not read again before END_REFRESH_S
    clock.now += 0.3
    assert not catch_up.after_poll(64, got_records=False)
    assert len(reads) == 2
    clock.now += 0.3
    assert catch_up.after_poll(64, got_records=False)  # 0.6 s without a record


def test_catch_up_follows_an_end_that_moves_on() -> None:
    clock, ends = ManualClock(), iter([10, 50])
    catch_up = CatchUp(lambda: next(ends), max_lag=0, idle_s=0.5, clock=clock)
    assert catch_up.after_poll(10, got_records=True)
    clock.now += END_REFRESH_S
    assert not catch_up.after_poll(10, got_records=False)
    assert catch_up.end == 50


def test_catch_up_is_immediate_on_an_empty_partition() -> None:
    catch_up = CatchUp(lambda: 0, max_lag=0, idle_s=0.5, clock=ManualClock())
    assert catch_up.after_poll(0, got_records=False)
