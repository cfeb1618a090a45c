"""OffsetTracker: a partition commits to the end of a poll span only once every span before
it is done; gaps inside spans (compaction, transaction markers) never stall it."""

import itertools
import random

import pytest

from streams.offsets import OffsetTracker


def test_nothing_done_commits_the_start() -> None:
    tracker = OffsetTracker({0: 5, 1: 0})
    assert tracker.committable() == {0: 5, 1: 0}
    assert tracker.pending() == 0


def test_in_order_spans_advance() -> None:
    tracker = OffsetTracker({0: 10})
    tracker.mark_done(0, 10, 13)
    assert tracker.committable() == {0: 13}
    tracker.mark_done(0, 13, 14)
    assert tracker.committable() == {0: 14}
    assert tracker.pending() == 0


def test_gaps_inside_spans_do_not_stall_commits() -> None:
    """A compacted topic: offsets 10, 11, 15, 40 exist; the polls' positions move 10 -> 16 -> 41."""
    tracker = OffsetTracker({0: 10})
    tracker.mark_done(0, 10, 16)
    tracker.mark_done(0, 16, 41)
    assert tracker.committable() == {0: 41}


def test_a_span_with_no_records_moves_the_commit() -> None:
    """A poll that read only a transaction marker (or aborted records) still moves it."""
    tracker = OffsetTracker({0: 7})
    tracker.mark_done(0, 7, 9)
    assert tracker.committable() == {0: 9}


def test_out_of_order_spans_wait_for_the_one_before() -> None:
    tracker = OffsetTracker({0: 0})
    tracker.mark_done(0, 5, 9)
    assert tracker.committable() == {0: 0}
    assert tracker.pending() == 1
    tracker.mark_done(0, 2, 5)
    assert tracker.committable() == {0: 0}
    assert tracker.pending() == 2
    tracker.mark_done(0, 0, 2)
    assert tracker.committable() == {0: 9}
    assert tracker.pending() == 0


def test_replayed_spans_change_nothing() -> None:
    tracker = OffsetTracker({0: 100})
    tracker.mark_done(0, 0, 50)
    tracker.mark_done(0, 90, 100)
    assert tracker.committable() == {0: 100}
    assert tracker.pending() == 0
    tracker.mark_done(0, 95, 120)  # overlaps the committed offset: moves it
    assert tracker.committable() == {0: 120}


def test_empty_spans_at_the_commit_are_harmless() -> None:
    tracker = OffsetTracker({0: 3})
    tracker.mark_done(0, 3, 3)
    assert tracker.committable() == {0: 3}
    assert tracker.pending() == 0


def test_a_span_that_ends_before_it_starts_is_a_bug() -> None:
    with pytest.raises(ValueError, match="ends before it"):
        OffsetTracker({0: 0}).mark_done(0, 5, 4)


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker({0: 0, 1: 20, 2: 7})
    tracker.mark_done(1, 21, 23)
    tracker.mark_done(0, 0, 2)
    assert tracker.committable() == {0: 2, 1: 20, 2: 7}
    assert tracker.pending() == 1
    tracker.mark_done(1, 20, 21)
    assert tracker.committable() == {0: 2, 1: 23, 2: 7}
    assert tracker.pending() == 0


def test_committable_is_a_copy() -> None:
    tracker = OffsetTracker({0: 0})
    tracker.committable()[0] = 99
    assert tracker.committable() == {0: 0}


def test_unknown_partition_raises() -> None:
    with pytest.raises(KeyError):
        OffsetTracker({0: 0}).mark_done(3, 0, 1)


def test_random_completion_order_matches_oracle() -> None:
    """Polls cut a gappy offset sequence into consecutive spans, finished in random order;
    oracle: the end of the longest run of finished spans from the start."""
    rng = random.Random(7)
    for _ in range(50):
        start = rng.randrange(0, 1000)
        cuts = sorted({start, *(start + rng.randrange(0, 500) for _ in range(20))})
        spans = list(itertools.pairwise(cuts))
        tracker = OffsetTracker({0: start})
        finished: set[tuple[int, int]] = set()
        for span in rng.sample(spans, len(spans)):
            tracker.mark_done(0, *span)
            finished.add(span)
            expected = start
            for s, e in spans:
                if (s, e) not in finished:
                    break
                expected = e
            assert tracker.committable() == {0: expected}
