"""Search filters: which pins a query may return, applied inside the shard index (boards as
tag selections, exclusions as excluded ids), so k results survive them without deeper searches."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shards.shard_state import Hits, ShardState


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
    if keep is None or keep.is_empty:
        return state.search(queries, k, exact=exact)
    return state.search(queries, k, keep.boards, keep.exclude_pin_ids, exact=exact)
