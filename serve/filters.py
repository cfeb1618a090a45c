"""Search filters, applied inside a shard replica with over-fetch so k results survive them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shards.shard_state import Hits, ShardState

# How much deeper each retry looks when a board filter left fewer than k hits.
GROWTH = 4


@dataclass(frozen=True)
class SearchFilter:
    """Which hits a search may return: pins of `boards` (None = any board), none of `exclude`."""

    boards: frozenset[str] | None = None
    exclude_pin_ids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, boards: Iterable[str] | None, exclude_pin_ids: Iterable[str]) -> SearchFilter:
        """Build from request lists (duplicates collapse)."""
        return cls(None if boards is None else frozenset(boards), frozenset(exclude_pin_ids))

    @property
    def is_empty(self) -> bool:
        """True when every hit passes."""
        return self.boards is None and not self.exclude_pin_ids

    def accepts(self, hit: dict[str, Any]) -> bool:
        """Whether a hit (a dict with pin_id and board) passes."""
        if hit["pin_id"] in self.exclude_pin_ids:
            return False
        return self.boards is None or hit["board"] in self.boards


def filtered_search(
    search: Callable[[np.ndarray, int], list[Hits]],
    queries: np.ndarray,
    k: int,
    keep: SearchFilter,
    live: Callable[[], int],
) -> list[Hits]:
    """Top-k hits per query that pass `keep`, best first; fewer only when fewer pass.

    `search(queries, n)` returns the top-n unfiltered hits per query and `live()` the number
    of searchable pins. Exclusions remove at most len(exclude) hits, so asking for that many
    more is exact; a board filter can remove any number, so the depth grows by GROWTH until
    every query has k hits or the whole shard was searched.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    depth = k + len(keep.exclude_pin_ids)
    if keep.boards is not None:
        depth *= GROWTH
    while True:
        size = live()
        depth = min(depth, max(size, 1))  # never deeper than the shard
        hits = search(queries, depth)
        kept = [[hit for hit in row if keep.accepts(hit)][:k] for row in hits]
        if depth >= size or all(len(row) == k for row in kept):
            return kept
        depth *= GROWTH


def search_state(
    state: ShardState,
    vectors: np.ndarray,
    k: int,
    keep: SearchFilter | None = None,
    exact: bool = False,
) -> list[Hits]:
    """A shard's top-k per query vector, best first, among the pins that pass `keep`;
    exact=True searches by brute force (the oracle of the online recall monitor)."""
    queries = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)

    def search(queries: np.ndarray, n: int) -> list[Hits]:
        return state.search(queries, n, exact=exact)

    if keep is None or keep.is_empty:
        return search(queries, k)
    return filtered_search(search, queries, k, keep, lambda: len(state))
