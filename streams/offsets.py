"""Which source offsets may be committed: the position after the last durable poll span."""

from __future__ import annotations

from collections.abc import Mapping


class OffsetTracker:
    """Per partition, the next offset to commit, advanced over finished poll spans.

    A span is the consumer positions one poll moved between (streams/poll_batch.py).
    Offsets inside may have gaps (compaction, transaction markers); consecutive spans
    of a partition do not. Spans may finish out of order (several embedder actors): the
    committable offset moves to a span's end only once every span before it is done.
    """

    def __init__(self, start_offsets: Mapping[int, int]) -> None:
        self._next: dict[int, int] = dict(start_offsets)
        self._done: dict[int, dict[int, int]] = {p: {} for p in start_offsets}

    def mark_done(self, partition: int, start: int, end: int) -> None:
        """Record that every record in [start, end) is written (log or DLQ) and acked."""
        if end < start:
            raise ValueError(f"span [{start}, {end}) of partition {partition} ends before it")
        done = self._done[partition]
        done[start] = max(end, done.get(start, end))
        next_offset = self._next[partition]
        while True:
            # A span that starts at or below the committable offset moves it (a replayed
            # one that ends below it changes nothing).
            reached = [s for s in done if s <= next_offset]
            if not reached:
                break
            for s in reached:
                next_offset = max(next_offset, done.pop(s))
        self._next[partition] = next_offset

    def committable(self) -> dict[int, int]:
        """Partition -> next offset to read after a restart."""
        return dict(self._next)

    def pending(self) -> int:
        """How many finished spans wait behind an unfinished one."""
        return sum(len(d) for d in self._done.values())
