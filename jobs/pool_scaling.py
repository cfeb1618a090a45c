"""The freshness rule of the embedder pool: the floor the ingest job keeps the pool at.

Ray Data sizes the pool by its utilisation, which rises only once batches queue for the
actors, that is once a backlog has built up. This rule acts on what users see instead: when
the p99 freshness over the recent window, or the lag at the current rate (the time the job
needs to reach the newest record), breaks the SLO for `upscale_delay_s`, the floor becomes
one more than the pool has; once both stay well within the SLO (half of it) for
`downscale_delay_s`, the floor drops by one, and Ray Data's own rule removes idle actors above
it. Each step restarts its delay, so a new actor has time to load its model and help before
the next. The floor stays within [min_size, max_size].

Pure and clock-injected: tests drive it without Ray and without sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Action = Literal["up", "down", "hold"]
# What the decision rests on: freshness or lag breaking the SLO, or both within it.
Cause = Literal["freshness", "lag", "within"]
# "Well within the SLO": both signals at or below this share of it before the floor drops.
WELL_WITHIN = 0.5


@dataclass(frozen=True)
class PoolSignal:
    """What the rule reads: freshness p99 (None: nothing written lately), lag in seconds at
    the current rate, and the actors the pool has now (pending included)."""

    freshness_p99_s: float | None
    lag_s: float
    size: int


@dataclass(frozen=True)
class ScalingDecision:
    """The floor the rule asks for, whether it moved it, on what and why, when (epoch s)."""

    action: Action
    floor: int
    cause: Cause
    reason: str
    at: float

    def describe(self) -> str:
        """One line for people: "up to 3 actors: freshness p99 4.10 s > SLO 3 s for 5.0 s"."""
        if self.action == "hold":
            return f"hold at {self.floor}: {self.reason}"
        return f"{self.action} to {self.floor} actors: {self.reason}"


def lag_seconds(lag_records: int, rate_per_s: float) -> float:
    """How long the job needs to reach the newest record at its current rate (inf: stalled)."""
    if lag_records <= 0:
        return 0.0
    return lag_records / rate_per_s if rate_per_s > 0 else math.inf


class PoolScalingRule:
    """Turns freshness and lag into the pool's floor; see the module docstring."""

    def __init__(
        self,
        slo_p99_s: float,
        min_size: int,
        max_size: int,
        upscale_delay_s: float,
        downscale_delay_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if slo_p99_s <= 0 or not 1 <= min_size <= max_size:
            raise ValueError(
                f"need slo_p99_s > 0 and 1 <= min_size <= max_size, got {slo_p99_s}, "
                f"{min_size}, {max_size}"
            )
        self.slo_p99_s = slo_p99_s
        self.min_size, self.max_size = min_size, max_size
        self._up_delay, self._down_delay = upscale_delay_s, downscale_delay_s
        self._clock = clock
        self.floor = min_size
        self._breaking_since: float | None = None
        self._within_since: float | None = None

    def decide(self, signal: PoolSignal) -> ScalingDecision:
        """The floor for now: up one on a lasting breach, down one after lasting calm."""
        now = self._clock()
        breach = self._breach(signal)
        if breach is not None:
            cause, what = breach
            self._within_since = None
            if self._breaking_since is None:
                self._breaking_since = now
            lasted = f"{what} for {now - self._breaking_since:.1f} s"
            if self.floor >= self.max_size:
                return self._decision("hold", cause, f"{lasted}, at embedders_max", now)
            if now - self._breaking_since < self._up_delay:
                return self._decision("hold", cause, lasted, now)
            self.floor = min(self.max_size, max(self.floor, signal.size) + 1)
            self._breaking_since = now
            return self._decision("up", cause, lasted, now)
        self._breaking_since = None
        if not self._well_within(signal):
            self._within_since = None
            return self._decision(
                "hold", "within", f"within the SLO ({self._describe(signal)})", now
            )
        if self._within_since is None:
            self._within_since = now
        calm = (
            f"well within the SLO for {now - self._within_since:.1f} s ({self._describe(signal)})"
        )
        if self.floor <= self.min_size or now - self._within_since < self._down_delay:
            return self._decision("hold", "within", calm, now)
        self.floor -= 1
        self._within_since = now
        return self._decision("down", "within", calm, now)

    def _breach(self, signal: PoolSignal) -> tuple[Cause, str] | None:
        slo = self.slo_p99_s
        p99 = signal.freshness_p99_s
        if p99 is not None and p99 > slo:
            return "freshness", f"freshness p99 {p99:.2f} s > SLO {slo:g} s"
        if signal.lag_s > slo:
            return "lag", f"lag {signal.lag_s:.2f} s at the current rate > SLO {slo:g} s"
        return None

    def _well_within(self, signal: PoolSignal) -> bool:
        bound = self.slo_p99_s * WELL_WITHIN
        p99 = signal.freshness_p99_s
        return (p99 is None or p99 <= bound) and signal.lag_s <= bound

    def _describe(self, signal: PoolSignal) -> str:
        p99 = signal.freshness_p99_s
        fresh = "nothing written" if p99 is None else f"freshness p99 {p99:.2f} s"
        return f"{fresh}, lag {signal.lag_s:.2f} s"

    def _decision(self, action: Action, cause: Cause, reason: str, now: float) -> ScalingDecision:
        return ScalingDecision(action, self.floor, cause, reason, now)
