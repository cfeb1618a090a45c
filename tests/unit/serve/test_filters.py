"""SearchFilter and filtered_search: every result equals exact search over the pins that pass."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from conf.config import ShardsConfig
from serve.filters import SearchFilter, filtered_search
from shards.shard_state import ShardState

DIM = 8
BOARDS = ["common"] * 95 + ["rare"] * 5


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def shard() -> tuple[ShardState, np.ndarray]:
    vectors = unit_rows(len(BOARDS))
    state = ShardState(ShardsConfig(dim=DIM))
    n = len(BOARDS)
    state.apply_rows(
        pa.table(
            {
                "pin_id": [f"p{i}" for i in range(n)],
                "op": ["upsert"] * n,
                "version": [1] * n,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM),
                "title": [f"t{i}" for i in range(n)],
                "board": BOARDS,
            }
        )
    )
    return state, vectors


def exact(vectors: np.ndarray, query: np.ndarray, k: int, keep: SearchFilter) -> list[str]:
    """The oracle: brute-force inner product over the pins that pass the filter."""
    ids = [f"p{i}" for i in range(len(vectors))]
    passing = [i for i, pid in enumerate(ids) if keep.accepts({"pin_id": pid, "board": BOARDS[i]})]
    scores = vectors[passing] @ query
    return [ids[passing[j]] for j in np.argsort(-scores, kind="stable")[:k]]


class CountingSearch:
    def __init__(self, state: ShardState) -> None:
        self.state, self.depths = state, []

    def __call__(self, queries: np.ndarray, depth: int) -> list:
        self.depths.append(depth)
        return self.state.search(queries, depth)


def test_filter_basics() -> None:
    assert SearchFilter().is_empty
    keep = SearchFilter.of(["a", "a"], ["x"])
    assert keep.boards == frozenset({"a"}) and not keep.is_empty
    assert keep.accepts({"pin_id": "y", "board": "a"})
    assert not keep.accepts({"pin_id": "x", "board": "a"})
    assert not keep.accepts({"pin_id": "y", "board": "b"})
    assert SearchFilter.of(None, []).is_empty


@pytest.mark.parametrize(
    ("boards", "exclude", "k"),
    [
        (None, [f"p{i}" for i in range(0, 100, 3)], 10),
        (["rare"], [], 3),
        (["rare"], [], 10),  # fewer pass than k: every one that passes
        (["rare", "common"], ["p1", "p2"], 50),
        (["absent"], [], 5),
    ],
)
def test_filtered_search_equals_exact_search_over_the_passing_pins(
    shard: tuple[ShardState, np.ndarray], boards: list[str] | None, exclude: list[str], k: int
) -> None:
    state, vectors = shard
    keep = SearchFilter.of(boards, exclude)
    queries = unit_rows(4, seed=1)
    found = filtered_search(state.search, queries, k, keep, lambda: len(state))
    assert len(found) == len(queries)
    for row, query in zip(found, queries, strict=True):
        assert [hit["pin_id"] for hit in row] == exact(vectors, query, k, keep)


def test_exclusions_alone_need_one_search(shard: tuple[ShardState, np.ndarray]) -> None:
    state, _ = shard
    search = CountingSearch(state)
    keep = SearchFilter.of(None, [f"p{i}" for i in range(20)])
    filtered_search(search, unit_rows(1), 5, keep, lambda: len(state))
    assert search.depths == [25]


def test_a_rare_board_deepens_until_the_whole_shard_was_searched(
    shard: tuple[ShardState, np.ndarray],
) -> None:
    state, _ = shard
    search = CountingSearch(state)
    found = filtered_search(search, unit_rows(1), 10, SearchFilter.of(["rare"], []), lambda: 100)
    assert len(found[0]) == 5
    assert search.depths == [40, 100]  # never deeper than the shard


def test_an_empty_shard_answers_empty_rows() -> None:
    state = ShardState(ShardsConfig(dim=DIM))
    found = filtered_search(state.search, unit_rows(2), 3, SearchFilter.of(["a"], []), lambda: 0)
    assert found == [[], []]


def test_k_must_be_positive(shard: tuple[ShardState, np.ndarray]) -> None:
    state, _ = shard
    with pytest.raises(ValueError, match="k must be >= 1"):
        filtered_search(state.search, unit_rows(1), 0, SearchFilter(), lambda: len(state))
