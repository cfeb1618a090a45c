"""Prometheus metrics of the ingest job, exported through Ray's metrics agent."""

from __future__ import annotations

from collections.abc import Mapping

from ray.util import metrics

from jobs.pool_scaling import ScalingDecision
from streams.ingest_health import PoolReport


class IngestMetrics:
    """Counters for events in, embedded, dead letters; gauges of lag per partition, of the
    freshness SLO and p99, of the embedder pool; the freshness rule's decisions."""

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
        self.freshness_slo = metrics.Gauge(
            "pinstream_ingest_freshness_slo_seconds",
            "the freshness SLO the embedder pool is scaled to (p99; 0 = none)",
            tag_keys=tags,
        )
        self.freshness_p99 = metrics.Gauge(
            "pinstream_ingest_freshness_p99_seconds",
            "p99 of event_time -> written to the embeddings log, over the recent window",
            tag_keys=tags,
        )
        self.lag_seconds = metrics.Gauge(
            "pinstream_ingest_lag_seconds",
            "the lag at the current write rate (time to reach the newest record)",
            tag_keys=tags,
        )
        self.pool_actors = metrics.Gauge(
            "pinstream_ingest_pool_actors",
            "embedder actors by state (running, pending) and the job's floor under them",
            tag_keys=("topic", "state"),
        )
        self.decisions = metrics.Counter(
            "pinstream_ingest_pool_decisions",
            "moves of the embedder pool's floor by the freshness rule, by action and cause",
            tag_keys=("topic", "action", "cause"),
        )
        self.last_decision = metrics.Gauge(
            "pinstream_ingest_pool_last_decision_timestamp_seconds",
            "when the freshness rule last moved the floor this way, for this cause (epoch s)",
            tag_keys=("topic", "action", "cause"),
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

    def record_pool(self, report: PoolReport) -> None:
        self.freshness_slo.set(report.slo_p99_s, tags=self._tags)
        if report.freshness_p99_s is not None:
            self.freshness_p99.set(report.freshness_p99_s, tags=self._tags)
        if report.lag_s is not None:
            self.lag_seconds.set(report.lag_s, tags=self._tags)
        for state, value in (
            ("running", report.running),
            ("pending", report.pending),
            ("floor", report.floor),
        ):
            self.pool_actors.set(value, tags={**self._tags, "state": state})

    def record_decision(self, decision: ScalingDecision) -> None:
        tags = {**self._tags, "action": decision.action, "cause": decision.cause}
        self.decisions.inc(1, tags=tags)
        self.last_decision.set(decision.at, tags=tags)
