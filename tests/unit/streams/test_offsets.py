"""OffsetTracker: a partition commits past offset n only once every offset below n is done."""

import random

import pytest

from streams.offsets import OffsetTracker


def test_nothing_done_commits_the_start() -> None:
    tracker = OffsetTracker({0: 5, 1: 0})
    assert tracker.committable() == {0: 5, 1: 0}
    assert tracker.pending() == 0


def test_in_order_completion_advances() -> None:
    tracker = OffsetTracker({0: 10})
    tracker.mark_done(0, [10, 11, 12])
    assert tracker.committable() == {0: 13}
    tracker.mark_done(0, [13])
    assert tracker.committable() == {0: 14}
    assert tracker.pending() == 0


def test_out_of_order_completion_waits_for_the_gap() -> None:
    tracker = OffsetTracker({0: 0})
    tracker.mark_done(0, [3, 4, 5])
    assert tracker.committable() == {0: 0}
    assert tracker.pending() == 3
    tracker.mark_done(0, [1, 2])
    assert tracker.committable() == {0: 0}
    assert tracker.pending() == 5
    tracker.mark_done(0, [0])
    assert tracker.committable() == {0: 6}
    assert tracker.pending() == 0


def test_only_the_contiguous_prefix_is_committed() -> None:
    tracker = OffsetTracker({0: 0})
    tracker.mark_done(0, [0, 1, 3, 4, 7])
    assert tracker.committable() == {0: 2}
    assert tracker.pending() == 3  # 3, 4 and 7 wait behind 2
    tracker.mark_done(0, [2])
    assert tracker.committable() == {0: 5}
    assert tracker.pending() == 1  # 7 waits behind 5


def test_duplicates_count_once() -> None:
    tracker = OffsetTracker({0: 0})
    tracker.mark_done(0, [2, 2, 2])
    tracker.mark_done(0, [2])
    assert tracker.pending() == 1
    tracker.mark_done(0, [0, 1, 0, 1])
    assert tracker.committable() == {0: 3}
    tracker.mark_done(0, [0, 1, 2])  # redelivered after commit
    assert tracker.committable() == {0: 3}
    assert tracker.pending() == 0


def test_offsets_below_start_are_ignored() -> None:
    tracker = OffsetTracker({0: 100})
    tracker.mark_done(0, [0, 50, 99])
    assert tracker.committable() == {0: 100}
    assert tracker.pending() == 0
    tracker.mark_done(0, [98, 100, 99, 101])
    assert tracker.committable() == {0: 102}
    assert tracker.pending() == 0


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker({0: 0, 1: 20, 2: 7})
    tracker.mark_done(1, [21, 22])
    tracker.mark_done(0, [0, 1])
    assert tracker.committable() == {0: 2, 1: 20, 2: 7}
    assert tracker.pending() == 2
    tracker.mark_done(1, [20])
    assert tracker.committable() == {0: 2, 1: 23, 2: 7}
    assert tracker.pending() == 0


def test_committable_is_a_copy() -> None:
    tracker = OffsetTracker({0: 0})
    tracker.committable()[0] = 99
    assert tracker.committable() == {0: 0}


def test_unknown_partition_raises() -> None:
    tracker = OffsetTracker({0: 0})
    with pytest.raises(KeyError):
        tracker.mark_done(3, [0])


def test_random_completion_order_matches_oracle() -> None:
    """Against a plain oracle: commit = the smallest offset >= start not yet done."""
    rng = random.Random(7)
    starts = {0: 0, 1: 40, 2: 1000}
    tracker = OffsetTracker(starts)
    done: dict[int, set[int]] = {p: set() for p in starts}
    for _ in range(400):
        partition = rng.choice(list(starts))
        batch = [starts[partition] + rng.randrange(-5, 120) for _ in range(rng.randint(0, 6))]
        tracker.mark_done(partition, batch)
        done[partition].update(batch)
        expected = {}
        for p, start in starts.items():
            offset = start
            while offset in done[p]:
                offset += 1
            expected[p] = offset
        assert tracker.committable() == expected
        waiting = sum(len({o for o in done[p] if o > expected[p]}) for p in starts)
        assert tracker.pending() == waiting
