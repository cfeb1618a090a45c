"""Ingest freshness: from a pin event's `event_time` to the moment the ingest job writes it to the
embeddings log, over a recent window of time, and the rate the job writes records at.

A window of time rather than of samples: when the stream goes quiet, old samples age out
and the figure says so (None), instead of holding the last burst's freshness for ever. The
clock is injected, so the window is tested without sleeping. Freshness compares two clocks
(the producer's, in `event_time`, and this job's): a skew between them adds to every sample.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

# Bounds the memory of a window under a very high rate: the oldest batches go first.
MAX_BATCHES = 10_000


class FreshnessWindow:
    """Freshness samples and written records of the last `window_s` seconds."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.time) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self._started = clock()
        # (written at, records written, freshness in seconds of those with an event time)
        self._batches: deque[tuple[float, int, np.ndarray]] = deque(maxlen=MAX_BATCHES)

    def observe(self, records: int, event_times_ms: Sequence[int]) -> None:
        """Record a batch of `records` written now; event times of 0 (deletes) are not timed."""
        now = self._clock()
        times = np.asarray(event_times_ms, dtype=np.int64)
        seconds = (now * 1000 - times[times > 0]) / 1000
        self._batches.append((now, records, seconds))
        self._forget(now)

    def p99(self) -> float | None:
        """The p99 freshness (seconds) over the window; None when nothing timed was written."""
        self._forget(self._clock())
        samples = [seconds for _, _, seconds in self._batches if seconds.size]
        if not samples:
            return None
        return float(np.percentile(np.concatenate(samples), 99))

    def rate(self) -> float:
        """Records written per second over the window (over the time since start, if shorter)."""
        now = self._clock()
        self._forget(now)
        span = min(self.window_s, now - self._started)
        if span <= 0:
            return 0.0
        return sum(records for _, records, _ in self._batches) / span

    def _forget(self, now: float) -> None:
        while self._batches and self._batches[0][0] < now - self.window_s:
            self._batches.popleft()
