"""Which source offsets may be committed: only below the first record not yet done."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class OffsetTracker:
    """Per partition, the next offset to commit, advanced only over finished records.

    Batches may finish out of order (several embedder actors); a partition's
    committable offset moves past offset n only once every offset below n is done.
    """

    def __init__(self, start_offsets: Mapping[int, int]) -> None:
        self._next: dict[int, int] = dict(start_offsets)
        self._done: dict[int, set[int]] = {p: set() for p in start_offsets}

    def mark_done(self, partition: int, offsets: Iterable[int]) -> None:
        """Record that these offsets are written (embeddings log or DLQ) and acked."""
        done = self._done[partition]
        next_offset = self._next[partition]
        done.update(o for o in offsets if o >= next_offset)
        while next_offset in done:
            done.remove(next_offset)
            next_offset += 1
        self._next[partition] = next_offset

    def committable(self) -> dict[int, int]:
        """Partition -> next offset to read after a restart."""
        return dict(self._next)

    def pending(self) -> int:
        """How many finished records wait behind an unfinished one."""
        return sum(len(d) for d in self._done.values())
