"""The centroid router against exact oracles: nearest centroids by brute force, balance counted."""

import pickle

import numpy as np
import pytest

from shards.router import CentroidRouter, balanced_assignment, train_router

DIM = 24
SHARDS = 4
GROUPS = 32


def clustered(n: int, seed: int, topics: int = 6, per_topic: int = 8) -> np.ndarray:
    """Unit vectors of a two-level mixture (topics, then sub-clusters), unevenly populated;
    the same seed gives the same mixture, so two calls draw from one corpus."""
    rng = np.random.default_rng(seed)
    tops = rng.standard_normal((topics, 1, DIM))
    centers = (tops + 0.5 * rng.standard_normal((topics, per_topic, DIM))).reshape(-1, DIM)
    weights = rng.pareto(1.5, len(centers)) + 0.2
    draw = np.random.default_rng(seed + n)
    labels = draw.choice(len(centers), size=n, p=weights / weights.sum())
    points = centers[labels] + 0.3 * draw.standard_normal((n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return clustered(6_000, seed=1)


@pytest.fixture(scope="module", params=["ip", "l2"])
def router(request: pytest.FixtureRequest, sample: np.ndarray) -> CentroidRouter:
    return train_router(sample, SHARDS, GROUPS, request.param, seed=3, nprobe=4)


def nearest_groups(router: CentroidRouter, vectors: np.ndarray, nprobe: int) -> np.ndarray:
    """The oracle: groups ranked by brute-force score (inner product, or -squared L2)."""
    if router.metric == "ip":
        scores = vectors @ router.centroids.T
    else:
        scores = -((vectors[:, None, :] - router.centroids[None, :, :]) ** 2).sum(-1)
    return np.argsort(-scores, axis=1, kind="stable")[:, :nprobe]


def test_shards_hold_about_an_equal_share_of_the_sample(
    router: CentroidRouter, sample: np.ndarray
) -> None:
    loads = router.shard_loads(sample)
    assert loads.sum() == len(sample)
    assert loads.max() / loads.mean() <= 1.1, loads
    assert set(router.group_shards.tolist()) == set(range(SHARDS))


def test_new_vectors_of_the_same_corpus_stay_balanced(router: CentroidRouter) -> None:
    loads = router.shard_loads(clustered(4_000, seed=1))  # fresh draws, same mixture
    assert loads.max() / loads.mean() <= 1.15, loads


def test_owner_shard_is_the_shard_of_the_nearest_group(router: CentroidRouter) -> None:
    vectors = clustered(500, seed=7)
    owners = router.owner_shards(vectors)
    assert owners.dtype == np.int64 and owners.shape == (500,)
    expected = router.group_shards[nearest_groups(router, vectors, 1)[:, 0]]
    assert (owners == expected).mean() >= 0.99  # ties in float32 aside


def test_shards_for_are_the_sorted_distinct_shards_of_the_nprobe_nearest_groups(
    router: CentroidRouter,
) -> None:
    queries = clustered(300, seed=8)
    for nprobe in (1, 4, GROUPS):
        found = router.shards_for(queries, nprobe)
        expected = router.group_shards[nearest_groups(router, queries, nprobe)]
        assert len(found) == len(queries)
        agree = [
            np.array_equal(shards, np.unique(row))
            for shards, row in zip(found, expected, strict=True)
        ]
        assert np.mean(agree) >= 0.99
        assert all(s.dtype == np.int64 and np.all(np.diff(s) > 0) for s in found)
    assert all(len(s) == SHARDS for s in router.shards_for(queries, GROUPS))
    # The default nprobe is the router's; the owner is always among the shards asked.
    default = router.shards_for(queries)
    assert [s.tolist() for s in default] == [s.tolist() for s in router.shards_for(queries, 4)]
    owners = router.owner_shards(queries)
    assert all(owner in shards for owner, shards in zip(owners, default, strict=True))


def test_neighbouring_groups_share_a_shard(router: CentroidRouter) -> None:
    """The point of clustering the centroids: a query's nearest groups fall on few shards."""
    queries = clustered(1_000, seed=9)
    touched = np.mean([len(s) for s in router.shards_for(queries, 4)])
    scattered = CentroidRouter(
        router.centroids, np.arange(GROUPS) % SHARDS, SHARDS, router.metric, 4
    )
    assert touched < np.mean([len(s) for s in scattered.shards_for(queries, 4)]) - 0.5


def test_training_is_deterministic_by_seed(sample: np.ndarray) -> None:
    first = train_router(sample, SHARDS, GROUPS, "ip", seed=5)
    again = train_router(sample, SHARDS, GROUPS, "ip", seed=5)
    other = train_router(sample, SHARDS, GROUPS, "ip", seed=6)
    np.testing.assert_array_equal(first.centroids, again.centroids)
    np.testing.assert_array_equal(first.group_shards, again.group_shards)
    assert not np.array_equal(first.centroids, other.centroids)


def test_a_group_too_big_for_any_room_left_goes_to_the_lightest_shard() -> None:
    centroids = np.eye(5, DIM, dtype=np.float32)
    sizes = np.array([100, 1, 1, 1, 1])
    owners = balanced_assignment(centroids, sizes, 2, "ip")
    small = np.bincount(owners[1:], weights=sizes[1:], minlength=2)
    assert small[owners[0]] == small.min()
    assert set(owners.tolist()) == {0, 1}


def test_one_shard_owns_everything(sample: np.ndarray) -> None:
    single = train_router(sample, 1, 8, "ip")
    assert set(single.owner_shards(sample).tolist()) == {0}
    assert all(s.tolist() == [0] for s in single.shards_for(sample[:10], 8))


def test_the_router_pickles_into_workers(router: CentroidRouter, sample: np.ndarray) -> None:
    router.owner_shards(sample[:3])  # builds its FAISS index over the centroids
    copy = pickle.loads(pickle.dumps(router))
    np.testing.assert_array_equal(copy.owner_shards(sample), router.owner_shards(sample))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((3, DIM + 1), np.float32), "dimension"),
        (np.full((2, DIM), np.nan, np.float32), "finite"),
        (np.zeros(DIM, np.float32), "2-D"),
    ],
)
def test_bad_vectors_are_refused(router: CentroidRouter, bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        router.owner_shards(bad)
    with pytest.raises(ValueError, match=message):
        router.shards_for(bad)


def test_bad_training_and_routing_arguments_are_refused(
    router: CentroidRouter, sample: np.ndarray
) -> None:
    with pytest.raises(ValueError, match="nprobe"):
        router.shards_for(sample[:2], GROUPS + 1)
    with pytest.raises(ValueError, match="nprobe"):
        router.shards_for(sample[:2], 0)
    with pytest.raises(ValueError, match=r"groups \(2\) must be >= num_shards \(4\)"):
        train_router(sample, SHARDS, 2, "ip")
    with pytest.raises(ValueError, match="cannot train 64 groups"):
        train_router(sample[:10], SHARDS, 64, "ip")
    with pytest.raises(ValueError, match="group_shards must be <= 3"):
        CentroidRouter(router.centroids, np.full(GROUPS, 4), SHARDS, "ip")
    with pytest.raises(ValueError, match="entries for"):
        CentroidRouter(router.centroids, np.zeros(3, np.int64), SHARDS, "ip")
