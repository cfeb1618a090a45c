"""SearchFilter and search_state: every result equals exact search over the pins that pass,
while growing, sealed (IVF) and by brute force."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from conf.config import ShardsConfig
from serve.filters import SearchFilter, search_state
from shards.shard_state import ShardState

DIM = 8
BOARDS = ["common"] * 95 + ["rare"] * 5


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def rows_table(vectors: np.ndarray) -> pa.Table:
    n = len(BOARDS)
    return pa.table(
        {
            "pin_id": [f"p{i}" for i in range(n)],
            "op": ["upsert"] * n,
            "version": [1] * n,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM),
            "title": [f"t{i}" for i in range(n)],
            "board": BOARDS,
        }
    )


@pytest.fixture(scope="module", params=["growing", "sealed"])
def shard(request: pytest.FixtureRequest) -> tuple[ShardState, np.ndarray]:
    vectors = unit_rows(len(BOARDS))
    # Every list probed, so that sealed answers are exact too, as the oracle is.
    state = ShardState(ShardsConfig(dim=DIM, sealed_index="IVF2,Flat", nprobe=2))
    state.apply_rows(rows_table(vectors))
    if request.param == "sealed":
        state.index.seal()
    return state, vectors


def exact(vectors: np.ndarray, query: np.ndarray, k: int, keep: SearchFilter) -> list[str]:
    """The oracle: brute-force inner product over the pins that pass the filter."""
    ids = [f"p{i}" for i in range(len(vectors))]
    passing = [i for i, pid in enumerate(ids) if keep.accepts({"pin_id": pid, "board": BOARDS[i]})]
    scores = vectors[passing] @ query
    return [ids[passing[j]] for j in np.argsort(-scores, kind="stable")[:k]]


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
    for exact_search in (False, True):
        found = search_state(state, queries, k, keep, exact=exact_search)
        assert len(found) == len(queries)
        for row, query in zip(found, queries, strict=True):
            assert [hit["pin_id"] for hit in row] == exact(vectors, query, k, keep)


def test_an_empty_shard_answers_empty_rows() -> None:
    state = ShardState(ShardsConfig(dim=DIM))
    assert search_state(state, unit_rows(2), 3, SearchFilter.of(["a"], [])) == [[], []]
    assert search_state(state, unit_rows(2), 3) == [[], []]


def test_k_must_be_positive(shard: tuple[ShardState, np.ndarray]) -> None:
    state, _ = shard
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        search_state(state, unit_rows(1), 0, SearchFilter.of(["rare"], []))
