"""Centroid routing: which shard owns a vector, and which shards a query must ask.

A coarse quantizer (k-means, G groups) is trained over a sample of the corpus. Each group is
given to one shard: the group centroids are clustered into S super-centroids (weighted by how
many sample vectors each group holds), and groups are handed out largest first, each to
the closest super-centroid's shard that still has room under an equal share of the sample.
Neighbouring groups therefore live on one shard, so a query's `nprobe` nearest groups
fall on few shards, and shards hold about the same number of pins.

A pin is owned by the shard of its vector's nearest group (`owner_shards`); a query asks the
distinct shards of its `nprobe` nearest groups (`shards_for`). Both are pure functions of the
centroids and the group -> shard table, so every process that loads the same router
(shards/router_store.py) routes the same way.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from conf.config import Metric, higher_is_better
from shards.arrays import check_int_array, check_matrix

KMEANS_ITERATIONS = 20
# Slack over an equal share before a shard counts as full: small enough to balance, large
# enough that geometry, not rounding, decides the last groups.
BALANCE_SLACK = 0.02


class CentroidRouter:
    """Routes vectors to the shards owning their nearest coarse centroid groups."""

    def __init__(
        self, centroids: Any, group_shards: Any, num_shards: int, metric: Metric, nprobe: int = 1
    ) -> None:
        centroids = np.asarray(centroids)
        if centroids.ndim != 2 or centroids.shape[0] < 1:
            raise ValueError(
                f"centroids must be a non-empty [groups, dim] matrix, got {centroids.shape}"
            )
        self.centroids = check_matrix(centroids, centroids.shape[1], "centroids")
        self.group_shards = check_int_array(group_shards, "group_shards", 0, num_shards - 1)
        if self.group_shards.shape[0] != self.groups:
            raise ValueError(
                f"group_shards has {self.group_shards.shape[0]} entries for {self.groups} groups"
            )
        if metric not in ("ip", "l2"):
            raise ValueError(f"metric must be ip or l2, got {metric!r}")
        self.num_shards = num_shards
        self.metric: Metric = metric
        self.nprobe = _check_nprobe(nprobe, self.groups)
        self._index: faiss.Index | None = None

    @property
    def groups(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    def groups_of(self, vectors: Any, nprobe: int = 1) -> np.ndarray:
        """The `nprobe` nearest groups of each row, nearest first: int64 [n, nprobe]."""
        matrix = check_matrix(vectors, self.dim, "vectors")
        _, labels = self._centroid_index().search(matrix, _check_nprobe(nprobe, self.groups))
        return labels.astype(np.int64, copy=False)

    def owner_shards(self, vectors: np.ndarray) -> np.ndarray:
        """The shard owning each row's vector (its nearest group's): int64, one per row."""
        return self.group_shards[self.groups_of(vectors, 1)[:, 0]]

    def shards_for(self, queries: np.ndarray, nprobe: int | None = None) -> list[np.ndarray]:
        """Per query, the sorted distinct shards owning its `nprobe` nearest groups (default:
        the router's nprobe); a query's true neighbours outside those groups are not asked."""
        probes = self.nprobe if nprobe is None else nprobe
        shards = self.group_shards[self.groups_of(queries, probes)]
        return [np.unique(row) for row in shards]

    def shard_loads(self, vectors: Any) -> np.ndarray:
        """How many of `vectors` each shard would own: int64 [num_shards]."""
        return np.bincount(self.owner_shards(vectors), minlength=self.num_shards)

    def _centroid_index(self) -> faiss.Index:
        if self._index is None:
            index = (
                faiss.IndexFlatIP(self.dim)
                if higher_is_better(self.metric)
                else (faiss.IndexFlatL2(self.dim))
            )
            index.add(self.centroids)
            self._index = index
        return self._index

    def __getstate__(self) -> dict[str, Any]:
        # The flat index over the centroids is rebuilt where it is used: FAISS indexes do not
        # pickle, and the arrays are the router.
        return {**self.__dict__, "_index": None}


def train_router(
    sample: Any,
    num_shards: int,
    groups: int,
    metric: Metric,
    seed: int = 0,
    nprobe: int = 1,
) -> CentroidRouter:
    """A router of `groups` k-means groups over `sample`, balanced over `num_shards` shards;
    the same sample and seed give the same router."""
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"num_shards must be an int >= 1, got {num_shards!r}")
    if groups < num_shards:
        raise ValueError(f"groups ({groups}) must be >= num_shards ({num_shards})")
    array = np.asarray(sample)
    if array.ndim != 2:
        raise ValueError(f"sample must be 2-D [n, dim], got shape {array.shape}")
    matrix = check_matrix(array, array.shape[1], "sample")
    if matrix.shape[0] < groups:
        raise ValueError(f"a sample of {matrix.shape[0]} vectors cannot train {groups} groups")
    centroids = _kmeans(matrix, groups, metric, seed)
    router = CentroidRouter(centroids, np.zeros(groups, np.int64), num_shards, metric, nprobe)
    sizes = np.bincount(router.groups_of(matrix, 1)[:, 0], minlength=groups)
    router.group_shards = balanced_assignment(centroids, sizes, num_shards, metric, seed)
    return router


def balanced_assignment(
    centroids: np.ndarray, sizes: np.ndarray, num_shards: int, metric: Metric, seed: int = 0
) -> np.ndarray:
    """The shard of each group (`sizes`: sample vectors in it): neighbouring groups together,
    no shard above an equal share of the sizes plus `BALANCE_SLACK`, but for a group too big
    for the room any shard has left, which goes to the lightest."""
    groups = centroids.shape[0]
    if num_shards == 1:
        return np.zeros(groups, dtype=np.int64)
    weights = sizes.astype(np.float32)
    # The super-centroids: one per shard, where the weight of the sample lies.
    supers = _kmeans(centroids, num_shards, metric, seed, weights=np.maximum(weights, 1e-3))
    affinity = centroids @ supers.T
    if not higher_is_better(metric):  # squared L2 distance, negated: larger is closer
        affinity = 2 * affinity - (centroids**2).sum(1, keepdims=True) - (supers**2).sum(1)
    capacity = float(weights.sum()) / num_shards * (1 + BALANCE_SLACK)
    owner = np.full(groups, -1, dtype=np.int64)
    loads = np.zeros(num_shards)
    # Largest groups first (first-fit decreasing), each to the closest shard with room for
    # it: the big ones land where they belong, the small ones fill what is left nearby. Ties
    # go by group, then shard number: the same inputs give the same table.
    for group in np.lexsort((np.arange(groups), -weights)).tolist():
        preference = np.lexsort((np.arange(num_shards), -affinity[group]))
        room = preference[loads[preference] + weights[group] <= capacity]
        shard = int(room[0]) if room.size else int(np.argmin(loads))  # too big: the lightest
        owner[group] = shard
        loads[shard] += weights[group]
    return owner


def _kmeans(
    points: np.ndarray,
    k: int,
    metric: Metric,
    seed: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """k centroids of points: spherical k-means for inner product (unit centroids)."""
    kmeans = faiss.Kmeans(
        points.shape[1],
        k,
        niter=KMEANS_ITERATIONS,
        seed=seed,
        spherical=higher_is_better(metric),
        min_points_per_centroid=1,  # few points per centroid is the caller's choice, no warning
    )
    kmeans.train(points, weights=weights)
    return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)


def _check_nprobe(nprobe: Any, groups: int) -> int:
    if isinstance(nprobe, bool) or not isinstance(nprobe, int | np.integer) or nprobe < 1:
        raise ValueError(f"nprobe must be an int >= 1, got {nprobe!r}")
    if nprobe > groups:
        raise ValueError(f"nprobe ({nprobe}) must be <= groups ({groups})")
    return int(nprobe)
