"""answer_queries: a batch of queries with their own k and filters, answered as each alone."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from conf.config import ShardsConfig
from serve.filters import SearchFilter, search_state
from serve.shard_query import ShardQuery, answer_queries, group_count
from shards.shard_state import ShardState

DIM = 8
PINS = [f"pin-{i}" for i in range(200)]


def state() -> ShardState:
    vectors = np.random.default_rng(3).standard_normal((len(PINS), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    shard = ShardState(ShardsConfig(dim=DIM, growing_limit=64, sealed_index="IVF4,Flat", nprobe=2))
    shard.apply_rows(
        pa.table(
            {
                "pin_id": PINS,
                "op": ["upsert"] * len(PINS),
                "version": [1] * len(PINS),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM),
                "title": PINS,
                "board": [("a", "b", "c")[i % 3] for i in range(len(PINS))],
            }
        )
    )
    return shard


def test_every_query_of_a_mixed_batch_gets_what_it_would_get_alone() -> None:
    shard = state()
    rng = np.random.default_rng(9)
    kinds = [
        (5, SearchFilter()),
        (3, SearchFilter.of(["a"], [])),
        (5, SearchFilter.of(None, ["pin-1", "pin-2"])),
        (9, SearchFilter.of(["b", "c"], ["pin-4"])),
    ]
    queries = [
        ShardQuery(rng.standard_normal(DIM).astype(np.float32), k, keep, exact=i % 5 == 0)
        for i, (k, keep) in enumerate(kinds * 6)
    ]
    alone = [search_state(shard, q.vector, q.k, q.keep, q.exact)[0] for q in queries]
    assert answer_queries(shard, queries) == alone
    assert group_count(queries) == 8  # four kinds, each exact and not


def test_queries_sharing_k_and_filter_are_one_group() -> None:
    vector = np.zeros(DIM, np.float32)
    same = [ShardQuery(vector, 10, SearchFilter.of(["x", "y"], ["p"])) for _ in range(5)]
    assert group_count(same) == 1
    assert group_count([*same, ShardQuery(vector, 10, SearchFilter.of(["y", "x"], ["p"]))]) == 1
    assert group_count([*same, ShardQuery(vector, 11, SearchFilter.of(["x", "y"], ["p"]))]) == 2
