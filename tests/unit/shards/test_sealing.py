"""Sealed segments at any size: the factory rule, building, lossless detection, filtered search."""

import gc

import numpy as np
import pytest

from conf.config import ShardsConfig
from shards.sealing import build_index, is_lossless, plan_factory
from shards.segments import SealedSegment
from shards.spill import SpillDir

DIM = 16


def build(
    keys: np.ndarray, vectors: np.ndarray, config: ShardsConfig, spill: SpillDir
) -> SealedSegment:
    """A sealed segment of vectors under keys, without tags or payload."""
    tags = np.zeros(len(keys), dtype=np.int32)
    return SealedSegment.build(keys, vectors, tags, None, config, spill)


def search_ids(
    segment: SealedSegment, queries: np.ndarray, k: int, config: ShardsConfig
) -> tuple[np.ndarray, np.ndarray]:
    """segment.search with positions mapped to ids (-1 stays -1)."""
    scores, positions = segment.search(queries, k, config)
    return scores, np.where(positions >= 0, segment.ids[np.maximum(positions, 0)], -1)


@pytest.mark.parametrize(
    ("factory", "n", "planned"),
    [
        ("IVF256,Flat", 100_000, "IVF256,Flat"),
        ("IVF256,Flat", 9_984, "IVF256,Flat"),
        ("IVF256,Flat", 9_983, "IVF255,Flat"),
        ("IVF256,Flat", 1_000, "IVF25,Flat"),
        ("IVF256,Flat", 39, "IVF1,Flat"),
        ("IVF256,Flat", 38, "Flat"),
        ("IVF256,Flat", 1, "Flat"),
        ("IVF1024_HNSW32,Flat", 2_000, "IVF51_HNSW32,Flat"),
        ("IVF256,PQ8", 9_984, "IVF256,PQ8"),
        ("IVF256,PQ8", 9_983, "Flat"),
        ("IVF16,PQ8x4fs", 624, "IVF16,PQ8x4fs"),
        ("IVF16,PQ8x4fs", 623, "Flat"),
        ("OPQ4,IVF8,PQ4", 5_000, "Flat"),
        ("HNSW32", 3, "HNSW32"),
        ("Flat", 1, "Flat"),
    ],
)
def test_plan_factory_follows_the_documented_rule(factory: str, n: int, planned: str) -> None:
    assert plan_factory(factory, n) == planned


FACTORIES = [
    "Flat",
    "IVF256,Flat",
    "IVF16,PQ4x4fs",
    "IVF8,PQ4",
    "IVF16,SQ8",
    "HNSW8",
    "IVF8,PQ4,RFlat",
]


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("factory", FACTORIES)
def test_any_factory_seals_any_size(factory: str, metric: str) -> None:
    rng = np.random.default_rng(0)
    spill = SpillDir()
    config = ShardsConfig(dim=DIM, metric=metric, sealed_index=factory, nprobe=64, ef_search=64)
    for n in (1, 40, 700):
        vectors = rng.standard_normal((n, DIM)).astype(np.float32)
        keys = np.arange(1_000, 1_000 + n, dtype=np.int64)
        segment = build(keys, vectors, config, spill)
        assert segment.n == n and segment.sealed
        _, ids = search_ids(segment, vectors[:5], 3, config)
        assert ids.shape == (min(5, n), min(3, n)) and (ids >= 1_000).all()
        if metric == "l2":
            # With every list probed and reranking exact, a vector's nearest neighbour is itself.
            np.testing.assert_array_equal(ids[:, 0], keys[:5])
        np.testing.assert_array_equal(segment.vectors_at(np.array([n - 1]))[0], vectors[-1])


@pytest.mark.parametrize(
    ("factory", "lossless"),
    [
        ("Flat", True),
        ("IVF8,Flat", True),
        ("HNSW8", True),
        ("IVF8,PQ4x4fs", False),
        ("IVF8,SQ8", False),
    ],
)
def test_lossless_indexes_keep_no_raw_vectors(factory: str, lossless: bool) -> None:
    vectors = np.random.default_rng(1).standard_normal((700, DIM)).astype(np.float32)
    config = ShardsConfig(dim=DIM, sealed_index=factory)
    index = build_index(vectors, factory, config.metric_type)
    assert is_lossless(index, vectors) is lossless
    segment = build(np.arange(700, dtype=np.int64), vectors, config, SpillDir())
    assert (segment.raw is None) is lossless


def test_raw_vectors_file_goes_with_its_segment(tmp_path) -> None:
    vectors = np.random.default_rng(2).standard_normal((700, DIM)).astype(np.float32)
    config = ShardsConfig(dim=DIM, sealed_index="IVF8,PQ4x4fs")
    segment = build(np.arange(700, dtype=np.int64), vectors, config, SpillDir(tmp_path))
    assert segment.raw is not None
    path = segment.raw.file.path
    assert path.parent == tmp_path and path.exists()
    np.testing.assert_array_equal(segment.vectors_at(np.array([3, 699])), vectors[[3, 699]])
    del segment
    gc.collect()
    assert not path.exists()


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_filtered_search_returns_k_live_results_even_when_probed_lists_are_dead(
    metric: str,
) -> None:
    """nprobe=1 over 20 lists with 95% of vectors dead: the probed list rarely holds k live
    vectors, so the exhaustive fallback must fill every row."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((800, DIM)).astype(np.float32)
    keys = np.arange(800, dtype=np.int64) * 7
    config = ShardsConfig(dim=DIM, metric=metric, sealed_index="IVF20,Flat", nprobe=1)
    segment = build(keys, vectors, config, SpillDir())
    alive = np.sort(rng.choice(800, size=40, replace=False))
    segment.kill(np.setdiff1d(np.arange(800), alive))
    assert segment.n_live == 40
    queries = rng.standard_normal((30, DIM)).astype(np.float32)
    _, ids = search_ids(segment, queries, 10, config)
    assert (ids >= 0).all() and set(ids.ravel().tolist()) <= set(keys[alive].tolist())
    _, ids = search_ids(segment, queries, 100, config)
    assert ids.shape == (30, 40)
    assert all(set(row.tolist()) == set(keys[alive].tolist()) for row in ids)


def test_rerank_gives_exact_scores_from_raw_vectors() -> None:
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((1_000, DIM)).astype(np.float32)
    config = ShardsConfig(dim=DIM, sealed_index="IVF8,PQ4x4fs", nprobe=8, rerank_factor=4)
    segment = build(np.arange(1_000, dtype=np.int64), vectors, config, SpillDir())
    queries = rng.standard_normal((20, DIM)).astype(np.float32)
    scores, ids = search_ids(segment, queries, 5, config)
    exact = np.einsum("md,mkd->mk", queries, vectors[ids])
    np.testing.assert_allclose(scores, exact, rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
