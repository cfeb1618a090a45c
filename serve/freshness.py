"""Freshness: the time from a pin event's `event_time` to the moment a replica can serve it."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
from ray.util import metrics

BUCKETS_S = [0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0]


class FreshnessTracker:
    """Keeps recent freshness samples for percentiles and exports a Prometheus histogram."""

    def __init__(self, shard: int, window: int = 10_000) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._shard = str(shard)
        self._histogram = metrics.Histogram(
            "pinstream_freshness_seconds",
            description="event_time to searchable on a shard replica",
            boundaries=BUCKETS_S,
            tag_keys=("shard",),
        )
        self._applied = metrics.Counter(
            "pinstream_log_rows_applied",
            description="embeddings-log rows applied by a shard replica",
            tag_keys=("shard",),
        )

    def observe(self, event_times_ms: list[int], now_ms: int) -> None:
        """Record one applied batch; rows without an event time (deletes) are skipped."""
        seconds = [(now_ms - t) / 1000 for t in event_times_ms if t]
        with self._lock:
            self._samples.extend(seconds)
        tags = {"shard": self._shard}
        for value in seconds:
            self._histogram.observe(value, tags=tags)
        self._applied.inc(len(event_times_ms), tags=tags)

    def percentiles(self) -> dict[str, float | int | None]:
        """p50 / p99 (seconds) over the recent window, and how many samples it holds."""
        with self._lock:
            samples = np.array(self._samples, dtype=np.float64)
        if samples.size == 0:
            return {"p50_s": None, "p99_s": None, "samples": 0}
        p50, p99 = np.percentile(samples, [50, 99])
        return {
            "p50_s": round(float(p50), 3),
            "p99_s": round(float(p99), 3),
            "samples": int(samples.size),
        }

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()
