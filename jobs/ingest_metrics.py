"""Prometheus metrics of the ingest job, exported through Ray's metrics agent."""

from __future__ import annotations

from collections.abc import Mapping

from ray.util import metrics


class IngestMetrics:
    """Counters for events in, embedded, dead letters; a gauge of lag per partition."""

    def __init__(self, topic: str) -> None:
        tags = ("topic",)
        self._tags = {"topic": topic}
        self.events = metrics.Counter("pinstream_ingest_events", "pin events read", tag_keys=tags)
        self.embedded = metrics.Counter("pinstream_ingest_embedded", "pins embedded", tag_keys=tags)
        self.dead_letters = metrics.Counter(
            "pinstream_ingest_dead_letters", "events sent to the DLQ", tag_keys=tags
        )
        self.lag = metrics.Gauge(
            "pinstream_ingest_lag",
            "records not yet committed, per partition (the local broker undercounts)",
            tag_keys=("topic", "partition"),
        )

    def record_batch(self, events: int, embedded: int, dead_letters: int) -> None:
        self.events.inc(events, tags=self._tags)
        if embedded:
            self.embedded.inc(embedded, tags=self._tags)
        if dead_letters:
            self.dead_letters.inc(dead_letters, tags=self._tags)

    def record_lag(self, lag: Mapping[int, int]) -> None:
        for partition, value in lag.items():
            self.lag.set(value, tags={**self._tags, "partition": str(partition)})
