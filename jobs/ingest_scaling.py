"""The ingest job's side of embedder pool scaling: what it measures (freshness of what it
writes, lag), the freshness rule it runs on them, the floor it sets on the pool, and the
report of all that for `pinstream status` and the metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

from conf.config import IngestConfig
from jobs.embedder_pool import EmbedderPool
from jobs.ingest_freshness import FreshnessWindow
from jobs.pool_scaling import PoolScalingRule, PoolSignal, ScalingDecision, lag_seconds
from streams.ingest_health import PoolReport

# The rule runs at most this often: each run takes a p99 over the window.
STEER_EVERY_S = 0.5


class IngestScaling:
    """Freshness, lag and the freshness rule of one ingest job, steering `pool`."""

    def __init__(
        self, settings: IngestConfig, pool: EmbedderPool, clock: Callable[[], float] = time.time
    ) -> None:
        self.pool = pool
        self.slo_p99_s = settings.freshness_slo_p99_s
        self._clock = clock
        self._freshness = FreshnessWindow(settings.freshness_window_s, clock=clock)
        self._lag: dict[int, int] = {}
        self._rule = (
            PoolScalingRule(
                settings.freshness_slo_p99_s,
                settings.embedders_min,
                settings.embedders_max,
                settings.pool_upscale_delay_s,
                settings.pool_downscale_delay_s,
                clock=clock,
            )
            if settings.freshness_slo_p99_s > 0
            else None
        )
        self._next_steer = 0.0
        self.last_decision: ScalingDecision | None = None  # the rule's last move of the floor

    @property
    def lag(self) -> dict[int, int]:
        """Records behind, per partition, as last measured."""
        return dict(self._lag)

    def written(self, records: int, event_times_ms: Sequence[int]) -> None:
        """Count a batch just written to the log (or the dead-letter topic)."""
        self._freshness.observe(records, event_times_ms)

    def measured_lag(self, lag: Mapping[int, int]) -> None:
        """Take the lag per partition the job measured."""
        self._lag = dict(lag)

    def lag_s(self) -> float:
        """The lag in seconds at the current write rate (inf: records wait, none written)."""
        return lag_seconds(sum(self._lag.values()), self._freshness.rate())

    def steer(self) -> ScalingDecision | None:
        """Run the freshness rule and set the pool's floor; the decision when it moved it."""
        now = self._clock()
        if self._rule is None or now < self._next_steer:
            return None
        self._next_steer = now + STEER_EVERY_S
        size = self.pool.size
        decision = self._rule.decide(
            PoolSignal(self._freshness.p99(), self.lag_s(), size.running + size.pending)
        )
        self.pool.set_floor(decision.floor)
        if decision.action == "hold":
            return None
        self.last_decision = decision
        return decision

    def report(self) -> PoolReport:
        """The pool, the SLO, the current figures and the last moves, for the health file."""
        pool, decision, move = self.pool, self.last_decision, self.pool.last_move
        lag_s = self.lag_s()
        return PoolReport(
            running=pool.size.running,
            pending=pool.size.pending,
            floor=pool.floor,
            min_size=pool.min_size,
            max_size=pool.max_size,
            slo_p99_s=self.slo_p99_s,
            freshness_p99_s=self._freshness.p99(),
            lag_s=None if math.isinf(lag_s) else lag_s,
            decision=None if decision is None else decision.describe(),
            decided_at=None if decision is None else decision.at,
            move=None if move is None else f"{move.delta:+d} actors: {move.reason}",
            moved_at=None if move is None else move.at,
        )
