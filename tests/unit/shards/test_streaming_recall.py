"""Recall under streaming: clustered inserts, deletes and re-inserts, in the shape of the
NeurIPS'23 big-ann streaming track's clustered and delete runbooks, on 5,000 x 32 vectors.

After every step, recall@10 of the shard is measured against exact search over the live set.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from conf.config import ShardsConfig
from shards import ShardIndex

DIM = 32
N = 5_000
CLUSTERS = 10
K = 10


@dataclass(frozen=True)
class Step:
    """One runbook step: upsert these rows (by row number), or delete them."""

    op: str
    rows: np.ndarray


def clustered_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors from a Gaussian mixture with a decaying spectrum, and each one's cluster."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((CLUSTERS, DIM))
    spread = 1.0 / np.arange(1, DIM + 1) ** 0.5
    labels = rng.integers(CLUSTERS, size=N)
    vectors = centers[labels] + rng.standard_normal((N, DIM)) * spread * 0.6
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), labels


def runbook(labels: np.ndarray, seed: int) -> Iterator[Step]:
    """Insert cluster by cluster; from the third cluster on, delete half of the cluster two
    back and re-insert the half deleted two steps earlier (updates of deleted ids)."""
    rng = np.random.default_rng(seed)
    deleted: dict[int, np.ndarray] = {}
    for cluster in range(CLUSTERS):
        rows = np.flatnonzero(labels == cluster)
        for half in np.array_split(rows, 2):
            yield Step("upsert", half)
        if cluster >= 2:
            older = np.flatnonzero(labels == cluster - 2)
            deleted[cluster - 2] = rng.choice(older, size=len(older) // 2, replace=False)
            yield Step("delete", deleted[cluster - 2])
        if cluster >= 4:
            yield Step("upsert", deleted.pop(cluster - 4))


def recall_over_runbook(config: ShardsConfig, seed: int = 0) -> list[float]:
    """recall@10 after each step (queries: perturbed live vectors); no dead id may come back."""
    vectors, labels = clustered_data(seed)
    rng = np.random.default_rng(seed + 1)
    index = ShardIndex(config)
    live = np.zeros(N, dtype=bool)
    recalls = []
    for step in runbook(labels, seed):
        if step.op == "upsert":
            index.upsert(step.rows, vectors[step.rows])
        else:
            index.delete(step.rows)
        live[step.rows] = step.op == "upsert"
        # Measured once background seals and compactions are done: frozen segments waiting
        # to be sealed are searched exactly, so this is the least exact state.
        assert index.wait_idle(timeout=60)
        rows = np.flatnonzero(live)
        picks = rng.choice(rows, size=50)
        queries = vectors[picks] + rng.standard_normal((50, DIM)).astype(np.float32) * 0.05
        _, ids = index.search(queries, K)
        if config.metric == "ip":
            truth = np.argsort(-(queries @ vectors[rows].T), axis=1)[:, :K]
        else:
            distances = ((queries[:, None, :] - vectors[rows][None, :, :]) ** 2).sum(axis=2)
            truth = np.argsort(distances, axis=1)[:, :K]
        assert live[ids[ids >= 0]].all(), "a deleted id was returned"
        hits = [len(set(found) & set(rows[best])) for found, best in zip(ids, truth, strict=True)]
        recalls.append(float(np.mean(hits)) / K)
    index.close()
    return recalls


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_default_sealed_config_keeps_recall_under_streaming(metric: str) -> None:
    config = ShardsConfig(dim=DIM, metric=metric, growing_limit=1_000)
    assert np.mean(recall_over_runbook(config)) >= 0.95


@pytest.mark.parametrize(
    ("sealed_index", "nprobe", "rerank_factor", "goal"),
    [
        # The default probes 32 of 256 lists; the same 1/8 here, on segments large enough
        # (1,300 vectors) that the lists are not lowered.
        ("IVF32,Flat", 4, 0, 0.95),
        # 4-bit PQ on IVF residuals ("fsr"); without the "r" the codes encode raw clustered
        # vectors and this falls to about 0.91.
        ("IVF32,PQ16x4fsr", 4, 10, 0.95),
        ("Flat", 1, 0, 1.0),
    ],
)
def test_approximate_configs_keep_recall_under_streaming(
    sealed_index: str, nprobe: int, rerank_factor: int, goal: float
) -> None:
    config = ShardsConfig(
        dim=DIM,
        sealed_index=sealed_index,
        nprobe=nprobe,
        rerank_factor=rerank_factor,
        growing_limit=1_300,
    )
    assert np.mean(recall_over_runbook(config)) >= goal
