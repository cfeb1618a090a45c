"""ShardIndex against its oracles: a last-writer-wins fold of the log and exact numpy search."""

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from conf.config import ShardsConfig
from shards import ShardIndex
from shards.arrays import RESTORED_VERSION
from streams.routing import pin_keys

DIM = 32
METRICS = ["ip", "l2"]


@dataclass(frozen=True)
class Event:
    """One row of an embeddings log: an upsert carries a vector, a delete does not."""

    op: str
    key: int
    version: int
    vector: np.ndarray | None = None


def make_log(seed: int, n_pins: int = 800, n_events: int = 2_500) -> list[Event]:
    """A log of ~2,000 upserts (many updating a pin) and ~500 deletes; versions are offsets."""
    rng = np.random.default_rng(seed)
    keys = pin_keys([f"pin-{i}" for i in range(n_pins)])
    vectors = rng.standard_normal((n_events, DIM)).astype(np.float32)
    log = []
    for offset in range(n_events):
        key = int(rng.choice(keys))
        if rng.random() < 0.2:
            log.append(Event("delete", key, offset))
        else:
            log.append(Event("upsert", key, offset, vectors[offset]))
    return log


def fold(log: list[Event]) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    """The oracle: live vectors and newest version per key, last writer (by version) wins."""
    live: dict[int, np.ndarray] = {}
    seen: dict[int, int] = {}
    for event in log:
        if event.version <= seen.get(event.key, -1):
            continue
        seen[event.key] = event.version
        if event.op == "upsert":
            assert event.vector is not None
            live[event.key] = event.vector
        else:
            live.pop(event.key, None)
    return live, seen


def messy_delivery(log: list[Event], seed: int) -> list[Event]:
    """At-least-once delivery: the log, then replayed suffixes, shuffled within windows."""
    rng = np.random.default_rng(seed)
    delivered = list(log)
    for _ in range(3):
        delivered += log[int(rng.integers(len(log))) :]
    window = 64
    for start in range(0, len(delivered), window):
        chunk = delivered[start : start + window]
        delivered[start : start + window] = [chunk[i] for i in rng.permutation(len(chunk))]
    return delivered


def apply(index: ShardIndex, events: list[Event], seed: int) -> int:
    """Apply events in random-size batches, one call per run of the same op; return applied."""
    rng = np.random.default_rng(seed)
    applied = 0
    start = 0
    while start < len(events):
        batch = events[start : start + int(rng.integers(1, 200))]
        start += len(batch)
        run_start = 0
        for end in range(1, len(batch) + 1):
            if end < len(batch) and batch[end].op == batch[run_start].op:
                continue
            run = batch[run_start:end]
            ids = np.array([e.key for e in run], dtype=np.int64)
            versions = np.array([e.version for e in run], dtype=np.int64)
            if run[0].op == "upsert":
                applied += index.upsert(
                    ids, np.stack([e.vector for e in run if e.vector is not None]), versions
                )
            else:
                applied += index.delete(ids, versions)
            run_start = end
    return applied


def exact_scores(live: dict[int, np.ndarray], queries: np.ndarray, metric: str) -> np.ndarray:
    """Scores of every query against every live vector, in float64, live dict order."""
    matrix = np.stack(list(live.values())).astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "ip":
        return q @ matrix.T
    return ((q[:, None, :] - matrix[None, :, :]) ** 2).sum(axis=-1)


def assert_matches_exact(
    index: ShardIndex, live: dict[int, np.ndarray], queries: np.ndarray, k: int, metric: str
) -> None:
    """Top-k of the index equals exact search over the oracle's live set, ties aside."""
    scores, ids = index.search(queries, k)
    assert scores.shape == ids.shape == (len(queries), k)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    n_found = min(k, len(live))
    assert (ids[:, :n_found] >= 0).all(), "fewer than k results although k live vectors exist"
    assert (ids[:, n_found:] == -1).all()
    pad = -np.inf if metric == "ip" else np.inf
    assert (scores[:, n_found:] == pad).all()
    if n_found == 0:
        return
    keys = np.array(list(live), dtype=np.int64)
    column = {int(key): j for j, key in enumerate(keys)}
    truth = exact_scores(live, queries, metric)
    sign = -1.0 if metric == "ip" else 1.0
    order = np.argsort(sign * truth, axis=1, kind="stable")
    for row in range(len(queries)):
        found = ids[row, :n_found].tolist()
        assert len(set(found)) == n_found, "an id was returned twice"
        assert set(found) <= set(column), "a deleted or never-written id was returned"
        # Each returned score is the score of that id's *current* vector, so no stale vector.
        current = truth[row, [column[key] for key in found]]
        np.testing.assert_allclose(scores[row, :n_found], current, rtol=1e-4, atol=1e-3)
        best = truth[row, order[row, :n_found]]
        np.testing.assert_allclose(scores[row, :n_found], best, rtol=1e-4, atol=1e-3)
        boundary_tied = n_found < len(live) and np.isclose(
            truth[row, order[row, n_found - 1]], truth[row, order[row, n_found]], atol=1e-3
        )
        if not boundary_tied:
            assert set(found) == set(keys[order[row, :n_found]].tolist())


def assert_state_equals(index: ShardIndex, live: dict[int, np.ndarray], seen: dict[int, int]):
    assert len(index) == len(live)
    for key, version in seen.items():
        assert index.version(key) == version
        stored = index.vector(key)
        if key in live:
            assert stored is not None
            np.testing.assert_array_equal(stored, live[key])
        else:
            assert stored is None


def queries_for(log: list[Event], seed: int) -> np.ndarray:
    """Random queries plus old vectors of the log, which hit superseded and deleted pins."""
    rng = np.random.default_rng(seed)
    old = [e.vector for e in log[:300] if e.vector is not None][:40]
    return np.vstack([rng.standard_normal((40, DIM)).astype(np.float32), np.stack(old)])


def layout_config(layout: str, metric: str) -> ShardsConfig:
    """Growing segment only; or small segments sealed in the background as Flat or IVF-Flat.

    Segments of <= 400 vectors get at most 10 IVF lists, all probed (nprobe 32), so both
    sealed layouts search exactly while exercising dead masks, selectors and compaction.
    """
    if layout == "growing":
        return ShardsConfig(dim=DIM, metric=metric)
    sealed_index = "Flat" if layout == "sealed-flat" else "IVF256,Flat"
    return ShardsConfig(
        dim=DIM,
        metric=metric,
        sealed_index=sealed_index,
        growing_limit=150 if layout == "sealed-flat" else 400,
        compact_dead_fraction=0.3,
    )


@pytest.mark.parametrize(
    ("layout", "seed"),
    [("growing", 0), ("growing", 1), ("sealed-flat", 0), ("sealed-ivf", 1)],
)
@pytest.mark.parametrize("metric", METRICS)
def test_messy_delivery_equals_fold_of_the_log(layout: str, metric: str, seed: int) -> None:
    log = make_log(seed)
    live, seen = fold(log)
    index = ShardIndex(layout_config(layout, metric))
    apply(index, messy_delivery(log, seed), seed)

    assert_state_equals(index, live, seen)
    queries = queries_for(log, seed)
    for k in (1, 10, 100):
        assert_matches_exact(index, live, queries, k, metric)
    if layout != "growing":
        index.seal()
        index.wait_idle()
        assert all(segment["sealed"] for segment in index.stats()["segments"])
        assert_state_equals(index, live, seen)
        assert_matches_exact(index, live, queries, 10, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_replaying_the_whole_log_changes_nothing(metric: str) -> None:
    log = make_log(seed=2)
    live, seen = fold(log)
    index = ShardIndex(ShardsConfig(dim=DIM, metric=metric))
    assert apply(index, log, seed=2) > 0
    queries = queries_for(log, seed=2)
    before = index.search(queries, 20)

    assert apply(index, log, seed=3) == 0
    assert apply(index, log, seed=4) == 0

    assert_state_equals(index, live, seen)
    after = index.search(queries, 20)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert_matches_exact(index, live, queries, 20, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_k_larger_than_live_set_pads(metric: str) -> None:
    index = ShardIndex(ShardsConfig(dim=4, metric=metric))
    vectors = np.eye(4, dtype=np.float32)[:3]
    index.upsert([7, 8, 9], vectors)
    index.delete([8])
    live = {7: vectors[0], 9: vectors[2]}
    assert_matches_exact(index, live, np.ones((2, 4), dtype=np.float32), 5, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_search_on_empty_index_returns_padding(metric: str) -> None:
    index = ShardIndex(ShardsConfig(dim=4, metric=metric))
    scores, ids = index.search(np.ones((3, 4), dtype=np.float32), 2)
    assert (ids == -1).all() and ids.shape == (3, 2)
    assert (scores == (-np.inf if metric == "ip" else np.inf)).all()


def test_no_queries_gives_empty_results() -> None:
    index = ShardIndex(ShardsConfig(dim=4))
    index.upsert([1], np.ones((1, 4)))
    scores, ids = index.search(np.empty((0, 4), dtype=np.float32), 3)
    assert scores.shape == ids.shape == (0, 3)


def test_upsert_replaces_an_existing_id() -> None:
    index = ShardIndex(ShardsConfig(dim=2, metric="ip"))
    assert index.upsert([5], [[1.0, 0.0]]) == 1
    assert index.upsert([5], [[0.0, 1.0]]) == 1
    assert len(index) == 1
    np.testing.assert_array_equal(index.vector(5), [0.0, 1.0])
    scores, ids = index.search([[1.0, 0.0]], 3)
    assert ids.tolist() == [[5, -1, -1]]
    assert scores[0, 0] == 0.0


def test_delete_leaves_a_tombstone_that_beats_older_upserts() -> None:
    index = ShardIndex(ShardsConfig(dim=2))
    index.upsert([1], [[1.0, 0.0]], versions=[10])
    assert index.delete([1], versions=[12]) == 1
    assert index.upsert([1], [[1.0, 1.0]], versions=[11]) == 0
    assert index.upsert([1], [[1.0, 1.0]], versions=[12]) == 0
    assert index.vector(1) is None and len(index) == 0
    assert index.version(1) == 12
    assert index.upsert([1], [[1.0, 1.0]], versions=[13]) == 1
    np.testing.assert_array_equal(index.vector(1), [1.0, 1.0])


def test_delete_of_an_unseen_id_records_its_version() -> None:
    index = ShardIndex(ShardsConfig(dim=2))
    assert index.delete([3], versions=[5]) == 1
    assert index.version(3) == 5
    assert index.upsert([3], [[1.0, 1.0]], versions=[4]) == 0
    assert len(index) == 0


def test_stale_or_equal_versions_are_ignored() -> None:
    index = ShardIndex(ShardsConfig(dim=2))
    assert index.upsert([1, 2], [[1.0, 0.0], [0.0, 1.0]], versions=[5, 5]) == 2
    assert index.upsert([1, 2], [[9.0, 9.0], [9.0, 9.0]], versions=[5, 4]) == 0
    assert index.delete([1, 2], versions=[3, 5]) == 0
    np.testing.assert_array_equal(index.vector(1), [1.0, 0.0])
    np.testing.assert_array_equal(index.vector(2), [0.0, 1.0])


def test_a_restored_row_applies_once_and_any_event_of_the_new_log_beats_it() -> None:
    index = ShardIndex(ShardsConfig(dim=2))
    assert index.upsert([1, 2], [[1.0, 0.0], [0.0, 1.0]], versions=[RESTORED_VERSION] * 2) == 2
    assert index.upsert([1], [[9.0, 9.0]], versions=[RESTORED_VERSION]) == 0  # a replay
    assert index.upsert([1], [[1.0, 1.0]], versions=[0]) == 1  # offset 0 of the fresh log
    assert index.delete([2], versions=[0]) == 1
    np.testing.assert_array_equal(index.vector(1), [1.0, 1.0])
    assert index.vector(2) is None and len(index) == 1


def test_unversioned_writes_always_apply() -> None:
    index = ShardIndex(ShardsConfig(dim=2))
    index.upsert([1], [[1.0, 0.0]], versions=[100])
    assert index.upsert([1], [[0.0, 1.0]]) == 1
    np.testing.assert_array_equal(index.vector(1), [0.0, 1.0])
    version = index.version(1)
    assert version is not None and version > 100
    assert index.delete([1]) == 1
    assert index.upsert([1], [[1.0, 1.0]]) == 1
    assert index.upsert([1, 1], [[2.0, 2.0], [3.0, 3.0]]) == 1
    np.testing.assert_array_equal(index.vector(1), [3.0, 3.0])


def test_within_a_call_newest_version_wins_then_later_position() -> None:
    index = ShardIndex(ShardsConfig(dim=2))
    vectors = [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]
    assert index.upsert([1, 1, 1], vectors, versions=[7, 3, 5]) == 1
    np.testing.assert_array_equal(index.vector(1), [1.0, 0.0])
    assert index.version(1) == 7
    assert index.upsert([2, 2, 2], vectors, versions=[4, 4, 2]) == 1
    np.testing.assert_array_equal(index.vector(2), [2.0, 0.0])
    assert index.delete([1, 1], versions=[9, 8]) == 1
    assert index.version(1) == 9 and index.vector(1) is None
    assert len(index) == 1


def test_vector_returns_a_copy() -> None:
    index = ShardIndex(ShardsConfig(dim=2))
    index.upsert([1], [[1.0, 2.0]])
    stored = index.vector(1)
    assert stored is not None and stored.dtype == np.float32
    stored[:] = 0.0
    np.testing.assert_array_equal(index.vector(1), [1.0, 2.0])
    assert index.vector(2) is None and index.version(2) is None


def test_float64_and_non_contiguous_input_is_converted() -> None:
    index = ShardIndex(ShardsConfig(dim=3, metric="l2"))
    wide = np.arange(12, dtype=np.float64).reshape(2, 6)
    assert index.upsert(np.array([1, 2], dtype=np.uint32), wide[:, ::2]) == 2
    np.testing.assert_array_equal(index.vector(2), [6.0, 8.0, 10.0])
    _, ids = index.search(wide[:1, ::2], 1)
    assert ids.tolist() == [[1]]


def test_empty_calls_apply_nothing() -> None:
    index = ShardIndex(ShardsConfig(dim=3))
    assert index.upsert([], np.empty((0, 3), dtype=np.float32)) == 0
    assert index.delete([]) == 0
    assert len(index) == 0


@pytest.mark.parametrize("layout", ["growing", "sealed-ivf"])
def test_searches_while_a_thread_applies_the_log(layout: str) -> None:
    log = make_log(seed=5, n_events=1_500)
    live, seen = fold(log)
    index = ShardIndex(layout_config(layout, "ip"))
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            apply(index, log, seed=5)
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    queries = queries_for(log, seed=5)
    while thread.is_alive():
        scores, ids = index.search(queries, 10)
        assert scores.shape == ids.shape == (len(queries), 10)
    thread.join(timeout=60)
    assert not thread.is_alive() and not errors
    assert_state_equals(index, live, seen)
    assert_matches_exact(index, live, queries, 10, "ip")


GOOD_IDS = np.array([1, 2], dtype=np.int64)
GOOD_VECTORS = np.ones((2, 4), dtype=np.float32)
BAD_UPSERTS: list[tuple[str, Any, Any, Any]] = [
    ("ids must be 1-D", GOOD_IDS.reshape(2, 1), GOOD_VECTORS, None),
    ("ids must be integers", np.array([1.0, 2.0]), GOOD_VECTORS, None),
    ("ids must be >= 0", np.array([1, -1]), GOOD_VECTORS, None),
    ("ids must fit in int64", np.array([1, 2**63], dtype=np.uint64), GOOD_VECTORS, None),
    ("vectors must be 2-D", GOOD_IDS, np.ones(4, dtype=np.float32), None),
    ("vectors must have dimension 4", GOOD_IDS, np.ones((2, 5), dtype=np.float32), None),
    ("vectors must be real numbers", GOOD_IDS, np.full((2, 4), "1"), None),
    ("vectors must be finite", GOOD_IDS, np.array([[np.nan] * 4, [1.0] * 4]), None),
    ("vectors must be finite", GOOD_IDS, np.full((2, 4), 1e300), None),
    ("same length", np.array([1, 2, 3]), GOOD_VECTORS, None),
    ("same length", GOOD_IDS, GOOD_VECTORS, [1, 2, 3]),
    ("versions must be integers", GOOD_IDS, GOOD_VECTORS, [1.5, 2.0]),
    ("versions must be >= -1", GOOD_IDS, GOOD_VECTORS, [1, -2]),
]


@pytest.mark.parametrize(("message", "ids", "vectors", "versions"), BAD_UPSERTS)
def test_bad_upsert_raises_and_changes_nothing(
    message: str, ids: Any, vectors: Any, versions: Any
) -> None:
    index = ShardIndex(ShardsConfig(dim=4))
    with pytest.raises(ValueError, match=message):
        index.upsert(ids, vectors, versions)
    assert len(index) == 0 and index.version(1) is None


@pytest.mark.parametrize(
    ("message", "ids", "versions"),
    [
        ("ids must be integers", ["a"], None),
        ("ids must be >= 0", [-1], None),
        ("same length", [1, 2], [1]),
    ],
)
def test_bad_delete_raises(message: str, ids: Any, versions: Any) -> None:
    index = ShardIndex(ShardsConfig(dim=4))
    with pytest.raises(ValueError, match=message):
        index.delete(ids, versions)


@pytest.mark.parametrize(
    ("message", "queries", "k"),
    [
        ("k must be an int >= 1", np.ones((1, 4)), 0),
        ("k must be an int >= 1", np.ones((1, 4)), 2.0),
        ("k must be an int >= 1", np.ones((1, 4)), True),
        ("queries must be 2-D", np.ones(4), 1),
        ("queries must have dimension 4", np.ones((1, 3)), 1),
        ("queries must be finite", np.full((1, 4), np.inf), 1),
    ],
)
def test_bad_search_raises(message: str, queries: Any, k: Any) -> None:
    index = ShardIndex(ShardsConfig(dim=4))
    index.upsert([1], np.ones((1, 4)))
    with pytest.raises(ValueError, match=message):
        index.search(queries, k)


@pytest.mark.parametrize(
    ("dim", "metric", "message"),
    [
        (0, "ip", "dim"),
        (-1, "l2", "dim"),
        (True, "ip", "dim"),
        (3.0, "ip", "dim"),
        (8, "cos", "metric"),
    ],
)
def test_bad_config_raises(dim: Any, metric: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShardsConfig(dim=dim, metric=metric)
