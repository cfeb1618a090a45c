"""When a poll batch closes: when it is full, or when its oldest record has spent its share
of the latency budget.

Freshness is the time from a pin's event to a shard replica serving it, and a record that
waits for its batch to fill spends part of it. A batch so closes at `max_records` (under a
backlog polls come back full and nothing waits) or once its oldest record is `budget_ms`
old: a slow stream gets small batches, promptly; a backlog gets full ones. The age counts
from the record's Kafka timestamp, so the time it spent in the producer and the broker
counts too, and a record that is late already (a backlog, a stalled pipeline) is not held
at all. A timestamp from the future (another host's clock) or none (-1) counts as age 0:
no record waits longer than `budget_ms` after it arrived.

The rule is pure and its clocks are passed in, so tests drive it without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streams.events import now_ms


class TimestampedRecord(Protocol):
    """What the rule reads of a polled record (kafka-python's ConsumerRecord has it)."""

    timestamp: int


# One poll of one partition: (timeout_ms, max_records) -> its records, oldest first.
Poll = Callable[[int, int], list[Any]]


@dataclass(frozen=True)
class Clock:
    """The two clocks of the rule: a monotonic one for waiting, the wall for record ages."""

    monotonic_s: Callable[[], float] = time.monotonic
    wall_ms: Callable[[], int] = now_ms


SYSTEM_CLOCK = Clock()


def oldest_age_ms(records: Sequence[TimestampedRecord], wall_ms: int) -> int:
    """Age of the oldest record at `wall_ms`, by its timestamp; 0 when none has a usable one."""
    stamps = [r.timestamp for r in records if r.timestamp is not None and r.timestamp >= 0]
    return max(0, wall_ms - min(stamps)) if stamps else 0


@dataclass(frozen=True)
class BatchBudget:
    """Closes a batch at `max_records`, or once its oldest record is `budget_ms` old."""

    max_records: int
    budget_ms: int

    def __post_init__(self) -> None:
        if self.max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {self.max_records}")
        if self.budget_ms < 0:
            raise ValueError(f"budget_ms must be >= 0, got {self.budget_ms}")

    def wait_ms(self, age_ms: int) -> int:
        """How much longer a batch whose oldest record is `age_ms` old may wait for more."""
        return max(0, self.budget_ms - age_ms)

    def fill(self, poll: Poll, first_timeout_ms: int, clock: Clock = SYSTEM_CLOCK) -> list[Any]:
        """One batch: wait up to `first_timeout_ms` for a record, then poll for more until
        the batch is full or its oldest record has spent the budget; [] when none came."""
        batch = poll(first_timeout_ms, self.max_records)
        if not batch:
            return batch
        wait_s = self.wait_ms(oldest_age_ms(batch, clock.wall_ms())) / 1000
        deadline = clock.monotonic_s() + wait_s
        while len(batch) < self.max_records:
            left_ms = int((deadline - clock.monotonic_s()) * 1000)
            if left_ms <= 0:
                break
            batch.extend(poll(left_ms, self.max_records - len(batch)))
        return batch
