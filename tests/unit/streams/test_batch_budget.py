"""The batching rule against a simulated partition: a clock injected, no sleeps."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from streams.batch_budget import BatchBudget, Clock, oldest_age_ms

EPOCH_MS = 1_700_000_000_000  # the wall clock's reading at simulated time 0


@dataclass
class Record:
    offset: int
    timestamp: int  # producer's wall clock, ms
    arrives_s: float  # when the consumer can fetch it, simulated seconds


class Partition:
    """A partition as a consumer sees it: a poll returns at once what has arrived (up to
    max_records), else waits until the next record arrives or the timeout passes."""

    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.next = 0
        self.now_s = 0.0
        self.clock = Clock(monotonic_s=lambda: self.now_s, wall_ms=self.wall_ms)

    def wall_ms(self) -> int:
        return EPOCH_MS + round(self.now_s * 1000)

    def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        if self.next < len(self.records) and self.records[self.next].arrives_s > self.now_s:
            self.now_s = min(self.records[self.next].arrives_s, self.now_s + timeout_ms / 1000)
        got = []
        while (
            self.next < len(self.records)
            and len(got) < max_records
            and self.records[self.next].arrives_s <= self.now_s
        ):
            got.append(self.records[self.next])
            self.next += 1
        if not got:
            self.now_s += 0 if self.next < len(self.records) else timeout_ms / 1000
        return got


def stream(
    count: int, every_s: float, start_s: float = 0.0, transit_s: float = 0.0
) -> list[Record]:
    """`count` records produced every `every_s`, each fetchable `transit_s` after it was made."""
    made = [start_s + i * every_s for i in range(count)]
    return [Record(i, EPOCH_MS + round(t * 1000), t + transit_s) for i, t in enumerate(made)]


def batches(partition: Partition, budget: BatchBudget) -> list[tuple[float, list[Record]]]:
    """Fill batches until the partition is drained: (time each closed, its records)."""
    out = []
    while partition.next < len(partition.records):
        batch = budget.fill(partition.poll, 100, partition.clock)
        if batch:
            out.append((partition.now_s, batch))
    return out


def test_a_slow_stream_closes_small_batches_once_the_oldest_record_spent_the_budget() -> None:
    partition = Partition(stream(40, every_s=0.1))  # 10 records/s
    formed = batches(partition, BatchBudget(max_records=64, budget_ms=250))
    assert [len(b) for _, b in formed] == [3] * 13 + [1]
    for closed_s, batch in formed[:-1]:
        oldest_made_s = (batch[0].timestamp - EPOCH_MS) / 1000
        assert closed_s == pytest.approx(oldest_made_s + 0.25, abs=0.002)


def test_a_backlog_fills_every_batch_at_once() -> None:
    partition = Partition(stream(640, every_s=0.001, start_s=-30.0))  # made 30 s ago
    formed = batches(partition, BatchBudget(max_records=64, budget_ms=250))
    assert [len(b) for _, b in formed] == [64] * 10
    assert partition.now_s == 0.0  # nobody waited


def test_a_fast_stream_fills_the_batch_before_the_budget() -> None:
    partition = Partition(stream(200, every_s=0.001))  # 1,000 records/s
    formed = batches(partition, BatchBudget(max_records=64, budget_ms=250))
    assert [len(b) for _, b in formed] == [64, 64, 64, 8]
    first_closed_s, _ = formed[0]
    assert first_closed_s == pytest.approx(0.063)


def test_time_on_the_way_to_the_consumer_counts_against_the_budget() -> None:
    partition = Partition(stream(40, every_s=0.1, transit_s=0.2))
    closed_s, batch = batches(partition, BatchBudget(max_records=64, budget_ms=250))[0]
    assert len(batch) == 1  # arrived 200 ms old: 50 ms more, and no record came meanwhile
    assert closed_s == pytest.approx(0.25, abs=0.002)


def test_a_late_record_is_not_held() -> None:
    late = Record(0, EPOCH_MS - 5_000, 0.0)  # produced 5 s before it could be fetched
    partition = Partition([late, *stream(3, every_s=0.01, start_s=0.01)[:3]])
    batch = BatchBudget(max_records=64, budget_ms=250).fill(partition.poll, 100, partition.clock)
    assert batch == [late] and partition.now_s == 0.0


@pytest.mark.parametrize("timestamp", [-1, EPOCH_MS + 60_000])
def test_no_timestamp_or_one_from_the_future_waits_the_budget_and_no_more(timestamp: int) -> None:
    partition = Partition([Record(0, timestamp, 0.0), *stream(10, 1.0, start_s=1.0)[1:]])
    batch = BatchBudget(max_records=64, budget_ms=250).fill(partition.poll, 100, partition.clock)
    assert len(batch) == 1
    assert partition.now_s == pytest.approx(0.25, abs=0.002)


def test_a_zero_budget_takes_what_one_poll_gives() -> None:
    partition = Partition(stream(10, every_s=0.01))
    batch = BatchBudget(max_records=64, budget_ms=0).fill(partition.poll, 100, partition.clock)
    assert len(batch) == 1 and partition.now_s == 0.0


def test_an_idle_partition_gives_an_empty_batch_after_the_first_timeout() -> None:
    partition = Partition([])
    assert BatchBudget(64, 250).fill(partition.poll, 100, partition.clock) == []
    assert partition.now_s == pytest.approx(0.1)


def test_the_oldest_record_sets_the_age() -> None:
    records = [Record(0, EPOCH_MS - 50, 0.0), Record(1, EPOCH_MS - 80, 0.0), Record(2, -1, 0.0)]
    assert oldest_age_ms(records, EPOCH_MS) == 80
    assert oldest_age_ms([Record(0, -1, 0.0)], EPOCH_MS) == 0


@pytest.mark.parametrize(
    ("max_records", "budget_ms", "message"),
    [(0, 250, "max_records must be >= 1"), (64, -1, "budget_ms must be >= 0")],
)
def test_bad_limits_are_refused(max_records: int, budget_ms: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchBudget(max_records, budget_ms)
