"""A day's diurnal load: queries/s and ingest pins/s per minute, a sine between trough and peak.

docs/scaling.md assumes a peak of 1.5x the day's mean; a sine with that peak has its
trough at a third of the peak, the default here. Replace it with your traffic's curve
(`DiurnalCurve.from_minutes`) when you have one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MINUTES_PER_DAY = 24 * 60
# Trough over peak of a sine whose peak is 1.5x its mean: (2 - 1.5) / 1.5.
TROUGH_FRACTION = 1 / 3
PEAK_MINUTE = 20 * 60  # 20:00: the evening peak of a consumer app


@dataclass(frozen=True)
class DiurnalCurve:
    """Load per minute of one day: `qps[m]` queries/s and `ingest[m]` pins/s at minute m."""

    qps: tuple[float, ...]
    ingest: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.qps) != MINUTES_PER_DAY or len(self.ingest) != MINUTES_PER_DAY:
            raise ValueError(f"a day's curve has {MINUTES_PER_DAY} minutes per series")
        if min(self.qps) < 0 or min(self.ingest) < 0:
            raise ValueError("load must be >= 0 at every minute")

    @classmethod
    def sine(
        cls,
        peak_qps: float,
        peak_ingest: float,
        trough: float = TROUGH_FRACTION,
        peak_minute: int = PEAK_MINUTE,
    ) -> DiurnalCurve:
        """A sine with its peak at `peak_minute` and its trough `trough` x the peak, 12 h later."""
        if not 0 < trough <= 1:
            raise ValueError(f"trough must be in (0, 1] of the peak, got {trough}")
        if peak_qps < 0 or peak_ingest < 0:
            raise ValueError("peak rates must be >= 0")
        phase = [2 * math.pi * (m - peak_minute) / MINUTES_PER_DAY for m in range(MINUTES_PER_DAY)]
        shape = [trough + (1 - trough) * (1 + math.cos(p)) / 2 for p in phase]
        return cls(tuple(peak_qps * s for s in shape), tuple(peak_ingest * s for s in shape))

    @classmethod
    def from_minutes(cls, qps: list[float], ingest: list[float]) -> DiurnalCurve:
        """A measured day: one value per minute of each series."""
        return cls(tuple(qps), tuple(ingest))
