"""ShardsConfig checks every field once, at construction."""

from typing import Any

import pytest

from conf.config import ShardsConfig


def test_defaults() -> None:
    config = ShardsConfig(dim=384)
    assert (config.metric, config.sealed_index, config.growing_limit) == (
        "ip",
        "IVF256,Flat",
        50_000,
    )
    assert (config.nprobe, config.ef_search, config.rerank_factor) == (32, 64, 4)
    assert config.compact_dead_fraction == 0.2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("growing_limit", 0, "growing_limit must be an int >= 1"),
        ("growing_limit", 10.0, "growing_limit must be an int >= 1"),
        ("nprobe", 0, "nprobe must be an int >= 1"),
        ("ef_search", True, "ef_search must be an int >= 1"),
        ("rerank_factor", -1, "rerank_factor must be an int >= 0"),
        ("rerank_factor", 1.5, "rerank_factor must be an int >= 0"),
        ("compact_dead_fraction", 0.0, r"compact_dead_fraction must be in \(0, 1\]"),
        ("compact_dead_fraction", 1.5, r"compact_dead_fraction must be in \(0, 1\]"),
        ("compact_dead_fraction", "0.2", "compact_dead_fraction must be a number"),
        ("sealed_index", "", "sealed_index must be a faiss index_factory string"),
        ("sealed_index", "IVF256,Flatt", "not a valid faiss index_factory string for dim 32"),
        ("sealed_index", "IVF16,PQ5", "not a valid faiss index_factory string"),
        ("sealed_index", "IDMap,Flat", "must not contain IDMap"),
    ],
)
def test_bad_values_raise(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShardsConfig(dim=32, **{field: value})


def test_zero_rerank_and_full_dead_fraction_are_allowed() -> None:
    config = ShardsConfig(dim=8, rerank_factor=0, compact_dead_fraction=1.0, sealed_index="HNSW8")
    assert config.rerank_factor == 0
