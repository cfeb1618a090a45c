"""What the ingress asks of a shard: one query, and how a shard answers many at once.

A loaded shard replica receives many single queries concurrently; Serve's batcher hands it a
list of them (serve/shard_replica.py), and the batch API sends one list per shard. Either way
the replica searches FAISS once per group of queries that share k, filter and mode, so a batch
costs what FAISS's batched search costs, not one call per query. Queries of one group are
answered exactly as they would be alone: a group is searched with its own k (a larger k would
change the rerank depth of a lossy index, and with it the answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from serve.filters import SearchFilter, search_state
from shards.shard_state import Hits, ShardState

# What makes two queries searchable as one FAISS call: k, the filter and exact or not.
GroupKey = tuple[int, SearchFilter, bool]


@dataclass(frozen=True)
class ShardQuery:
    """One query vector with its own k and filter; exact=True by brute force (the online recall
    monitor's oracle)."""

    vector: np.ndarray
    k: int
    keep: SearchFilter = field(default_factory=SearchFilter)
    exact: bool = False

    @property
    def group(self) -> GroupKey:
        """The queries this one can share a FAISS call with have the same group."""
        return self.k, self.keep, self.exact


def answer_queries(state: ShardState, queries: Sequence[ShardQuery]) -> list[Hits]:
    """Each query's top-k, in the order given: one search of `state` per group of queries."""
    groups: dict[GroupKey, list[int]] = {}
    for position, query in enumerate(queries):
        groups.setdefault(query.group, []).append(position)
    answers: list[Hits] = [[] for _ in queries]
    for (k, keep, exact), positions in groups.items():
        vectors = np.stack([queries[p].vector for p in positions])
        found = search_state(state, vectors, k, keep, exact)
        for position, hits in zip(positions, found, strict=True):
            answers[position] = hits
    return answers


def group_count(queries: Sequence[ShardQuery]) -> int:
    """How many FAISS calls `answer_queries` makes for these queries."""
    return len({query.group for query in queries})
