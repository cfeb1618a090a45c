"""When a shard replica has caught up with its log partition and may take traffic."""

from __future__ import annotations

import time
from collections.abc import Callable

# How often the broker's end offset is read again while catching up.
END_REFRESH_S = 0.25


def caught_up(
    position: int, end_offset: int, idle_for_s: float, max_lag: int, idle_s: float
) -> bool:
    """Whether a replica at `position` is within `max_lag` records of the log's end.

    The broker's reported end offset can lag the real one (the local broker reports the
    base offset of the last batch + 1, DESIGN.md), so being within `max_lag` of it proves
    little on its own. It is enough only while the replica has not read past it (a broker
    with exact end offsets, as Kafka's are, even on a busy topic); otherwise a poll must
    also have found nothing new for `idle_s`.
    """
    if end_offset - position > max_lag:
        return False
    return position <= end_offset or idle_for_s >= idle_s


class CatchUp:
    """Watches a replica's log position after each poll until it has caught up."""

    def __init__(
        self,
        end_offset: Callable[[], int],
        max_lag: int,
        idle_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._end_offset = end_offset
        self._max_lag = max_lag
        self._idle_s = idle_s
        self._clock = clock
        now = clock()
        self.end = end_offset()  # read once at start, then every END_REFRESH_S
        self._end_read_at = now
        self._last_record_at = now

    def after_poll(self, position: int, got_records: bool) -> bool:
        """Record one poll's outcome; True once the replica has caught up."""
        now = self._clock()
        if got_records:
            self._last_record_at = now
        if now - self._end_read_at >= END_REFRESH_S:
            self.end = self._end_offset()
            self._end_read_at = now
        return caught_up(
            position, self.end, now - self._last_record_at, self._max_lag, self._idle_s
        )
