"""ShardIndex across segments: background sealing, deletes and updates, compaction.

The oracle is a plain dict of live vectors searched exactly with numpy. Sealed configs here
probe every IVF list (small segments get few lists), so results must be exact.
"""

import threading
from typing import Any

import numpy as np
import pytest

import shards.segments
from conf.config import ShardsConfig
from shards import ShardIndex
from tests.unit.shards.builds import DEADLINE_S, BlockedBuilds

DIM = 16
METRICS = ["ip", "l2"]


class Oracle:
    """Live vectors by id, searched exactly."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.live: dict[int, np.ndarray] = {}

    def upsert(self, index: ShardIndex, keys: np.ndarray, vectors: np.ndarray) -> None:
        index.upsert(keys, vectors)
        self.live.update(zip(keys.tolist(), vectors, strict=True))

    def delete(self, index: ShardIndex, keys: np.ndarray) -> None:
        index.delete(keys)
        for key in keys.tolist():
            self.live.pop(key, None)

    def check(self, index: ShardIndex, queries: np.ndarray, k: int = 10) -> None:
        """Search results equal exact top-k of the live set (ties aside), never a dead id."""
        assert len(index) == len(self.live)
        scores, ids = index.search(queries, k)
        keys = np.array(list(self.live), dtype=np.int64)
        matrix = np.stack(list(self.live.values())).astype(np.float64)
        if self.metric == "ip":
            truth = queries.astype(np.float64) @ matrix.T
            order = np.argsort(-truth, axis=1, kind="stable")
        else:
            truth = ((queries[:, None, :] - matrix[None, :, :]) ** 2).sum(axis=2)
            order = np.argsort(truth, axis=1, kind="stable")
        n_found = min(k, len(keys))
        assert (ids[:, :n_found] >= 0).all() and (ids[:, n_found:] == -1).all()
        best = np.take_along_axis(truth, order[:, :n_found], axis=1)
        np.testing.assert_allclose(scores[:, :n_found], best, rtol=1e-4, atol=1e-3)
        assert set(ids[:, :n_found].ravel().tolist()) <= set(self.live)


def data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    keys = rng.choice(10**9, size=n, replace=False).astype(np.int64)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    queries = rng.standard_normal((40, DIM)).astype(np.float32)
    return keys, vectors, queries


def segments(index: ShardIndex) -> list[tuple[int, int, bool, str]]:
    return [(s["vectors"], s["dead"], s["sealed"], s["index"]) for s in index.stats()["segments"]]


@pytest.mark.parametrize("metric", METRICS)
def test_searches_stay_exact_while_a_segment_is_sealed_in_the_background(
    metric: str, blocked_builds: BlockedBuilds
) -> None:
    keys, vectors, queries = data(0, 260)
    oracle = Oracle(metric)
    config = ShardsConfig(dim=DIM, metric=metric, growing_limit=200, compact_dead_fraction=1.0)
    index = ShardIndex(config)
    oracle.upsert(index, keys, vectors)
    assert blocked_builds.started.wait(DEADLINE_S)
    assert segments(index) == [(200, 0, False, "IndexFlat")]
    assert index.stats()["growing"] == 60
    oracle.check(index, queries)

    # Writes to ids of the frozen segment while its sealed index is being built.
    oracle.delete(index, keys[:30])
    oracle.upsert(index, keys[30:50], vectors[30:50] + 1.0)
    oracle.check(index, queries)
    assert index.vector(int(keys[0])) is None
    np.testing.assert_array_equal(index.vector(int(keys[30])), vectors[30] + 1.0)

    blocked_builds.release.set()
    assert index.wait_idle(DEADLINE_S)
    # Rows retired during the build are dead in the published segment.
    assert segments(index) == [(200, 50, True, "IndexIVFFlat")]
    oracle.check(index, queries)
    np.testing.assert_array_equal(index.vector(int(keys[100])), vectors[100])


def test_seal_is_synchronous_and_drops_dead_rows() -> None:
    keys, vectors, queries = data(1, 300)
    oracle = Oracle("l2")
    index = ShardIndex(ShardsConfig(dim=DIM, metric="l2", growing_limit=1_000))
    oracle.upsert(index, keys, vectors)
    oracle.delete(index, keys[::3])
    index.seal()
    assert index.stats()["growing"] == 0
    assert segments(index) == [(200, 0, True, "IndexIVFFlat")]
    oracle.check(index, queries)
    index.seal()  # nothing left to seal
    assert segments(index) == [(200, 0, True, "IndexIVFFlat")]


@pytest.mark.parametrize("metric", METRICS)
def test_updates_and_deletes_of_sealed_ids_are_never_returned(metric: str) -> None:
    keys, vectors, queries = data(2, 600)
    oracle = Oracle(metric)
    config = ShardsConfig(dim=DIM, metric=metric, growing_limit=150, compact_dead_fraction=1.0)
    index = ShardIndex(config)
    oracle.upsert(index, keys, vectors)
    index.seal()
    assert [s[:3] for s in segments(index)] == [(150, 0, True)] * 4
    # Move some ids far away and delete others: old copies stay as dead rows until compaction.
    oracle.upsert(index, keys[::4], -vectors[::4])
    oracle.delete(index, keys[1::4])
    oracle.check(index, queries)
    oracle.check(index, vectors[::4], k=5)  # the old vectors of updated ids, as queries
    assert sum(s[1] for s in segments(index)) == 300
    for key, vector in zip(keys[::4][:20].tolist(), vectors[::4][:20], strict=True):
        np.testing.assert_array_equal(index.vector(key), -vector)


def test_versions_decide_across_segments() -> None:
    index = ShardIndex(ShardsConfig(dim=2, sealed_index="Flat", growing_limit=2))
    index.upsert([1, 2], [[1.0, 0.0], [0.0, 1.0]], versions=[10, 10])
    index.seal()
    assert index.upsert([1], [[5.0, 5.0]], versions=[9]) == 0
    assert index.delete([2], versions=[10]) == 0
    assert index.upsert([1], [[2.0, 0.0]], versions=[11]) == 1
    assert index.delete([2], versions=[12]) == 1
    np.testing.assert_array_equal(index.vector(1), [2.0, 0.0])
    _, ids = index.search([[1.0, 0.0]], 3)
    assert ids.tolist() == [[1, -1, -1]]


def test_compaction_starts_at_the_dead_fraction_and_keeps_results() -> None:
    keys, vectors, queries = data(3, 400)
    oracle = Oracle("ip")
    config = ShardsConfig(dim=DIM, growing_limit=100, compact_dead_fraction=0.25)
    index = ShardIndex(config)
    oracle.upsert(index, keys, vectors)
    index.seal()
    oracle.delete(index, keys[:80])  # 20% dead: below the threshold
    assert index.wait_idle(DEADLINE_S)
    assert len(segments(index)) == 4 and index.stats()["dead_fraction"] == pytest.approx(0.2)
    oracle.check(index, queries)

    oracle.delete(index, keys[80:100])  # 25%: compaction queued in the background
    assert index.wait_idle(DEADLINE_S)
    assert segments(index) == [(300, 0, True, "IndexIVFFlat")]
    oracle.check(index, queries)


def test_explicit_compact_merges_segments() -> None:
    keys, vectors, queries = data(4, 300)
    oracle = Oracle("l2")
    index = ShardIndex(ShardsConfig(dim=DIM, metric="l2", sealed_index="Flat", growing_limit=100))
    oracle.upsert(index, keys, vectors)
    index.seal()
    oracle.delete(index, keys[:10])
    before = index.search(queries, 10)
    assert index.compact() == {"segments": 3, "vectors": 290, "dropped": 10}
    assert segments(index) == [(290, 0, True, "IndexFlatL2")]  # L2 flat, mapped from its file
    after = index.search(queries, 10)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0], rtol=1e-5)
    assert index.compact() == {"segments": 0, "vectors": 0, "dropped": 0}
    oracle.check(index, queries)


def test_writes_during_compaction_are_kept(blocked_builds: BlockedBuilds) -> None:
    keys, vectors, queries = data(5, 300)
    oracle = Oracle("ip")
    blocked_builds.release.set()  # let the seals through
    config = ShardsConfig(dim=DIM, growing_limit=100, compact_dead_fraction=1.0)
    index = ShardIndex(config)
    oracle.upsert(index, keys, vectors)
    index.seal()
    blocked_builds.release.clear()
    blocked_builds.started.clear()

    done: list[dict[str, int]] = []
    compaction = threading.Thread(target=lambda: done.append(index.compact()))
    compaction.start()
    assert blocked_builds.started.wait(DEADLINE_S)
    oracle.delete(index, keys[:50])
    oracle.upsert(index, keys[50:100], vectors[50:100] * 2.0)
    oracle.check(index, queries)
    blocked_builds.release.set()
    compaction.join(DEADLINE_S)
    assert done == [{"segments": 3, "vectors": 200, "dropped": 100}]
    assert index.stats()["growing"] == 50
    oracle.check(index, queries)
    np.testing.assert_array_equal(index.vector(int(keys[60])), vectors[60] * 2.0)


def test_a_failed_seal_keeps_the_segment_searchable_and_seal_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    build = shards.segments.build_index
    failures = iter([RuntimeError("disk full")])

    def flaky(*args: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return build(*args)

    monkeypatch.setattr(shards.segments, "build_index", flaky)
    keys, vectors, queries = data(6, 120)
    oracle = Oracle("ip")
    index = ShardIndex(ShardsConfig(dim=DIM, growing_limit=100))
    oracle.upsert(index, keys, vectors)
    assert index.wait_idle(DEADLINE_S)
    assert segments(index) == [(100, 0, False, "IndexFlat")]
    oracle.check(index, queries)
    index.seal()
    assert [s[2] for s in segments(index)] == [True, True]
    oracle.check(index, queries)


def test_len_and_contains_follow_the_live_set() -> None:
    index = ShardIndex(ShardsConfig(dim=2, sealed_index="Flat", growing_limit=2))
    index.upsert([1, 2, 3], np.eye(3, 2, dtype=np.float32))
    index.delete([2])
    assert len(index) == 2 and 1 in index and 2 not in index and 3 in index
    assert "1" not in index
