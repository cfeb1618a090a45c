"""ShardState against its oracles: a last-writer-wins fold of the log and exact numpy search."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from conf.config import ShardsConfig
from shards.exceptions import CorruptSnapshot
from shards.shard_state import PinInfo, ShardState
from streams.embeddings_log import log_schema

DIM = 16
SCHEMA = log_schema(DIM)


@dataclass(frozen=True)
class Event:
    """One embeddings-log row; the version is its source offset."""

    pin_id: str
    op: str
    version: int
    vector: np.ndarray | None = None
    title: str | None = None
    board: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "pin_id": self.pin_id,
            "op": self.op,
            "version": self.version,
            "generation": "test-gen",
            "vector": None if self.vector is None else self.vector.tolist(),
            "title": self.title,
            "board": self.board,
            "event_time": 1_700_000_000_000 + self.version,
        }


def make_log(seed: int, n_pins: int = 60, n_events: int = 600) -> list[Event]:
    """Upserts (first writes and updates) and ~20% deletes of n_pins pins, versions increasing."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n_events, DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    log = []
    for version in range(n_events):
        pin_id = f"pin-{int(rng.integers(n_pins)):04d}"
        if rng.random() < 0.2:
            log.append(Event(pin_id, "delete", version))
        else:
            board = "" if rng.random() < 0.1 else f"Board {int(rng.integers(5))}"
            log.append(Event(pin_id, "upsert", version, vectors[version], f"v{version}", board))
    return log


def fold(log: list[Event]) -> dict[str, Event]:
    """The oracle: the newest live upsert per pin, last writer (by version) wins."""
    newest: dict[str, Event] = {}
    for event in log:
        if event.pin_id not in newest or event.version > newest[event.pin_id].version:
            newest[event.pin_id] = event
    return {pin_id: event for pin_id, event in newest.items() if event.op == "upsert"}


def table(events: list[Event]) -> pa.Table:
    return pa.Table.from_pylist([event.row() for event in events], schema=SCHEMA)


def messy_batches(log: list[Event], seed: int) -> list[pa.Table]:
    """At-least-once delivery: replayed suffixes, shuffled windows, random batch sizes."""
    rng = np.random.default_rng(seed)
    delivered = list(log)
    for _ in range(3):
        delivered += log[int(rng.integers(len(log))) :]
    window = 48
    for start in range(0, len(delivered), window):
        chunk = delivered[start : start + window]
        delivered[start : start + window] = [chunk[i] for i in rng.permutation(len(chunk))]
    batches = []
    start = 0
    while start < len(delivered):
        size = int(rng.integers(0, 90))
        part = delivered[start : start + size]
        if len(part) > 1 and rng.random() < 0.3:  # a multi-chunk table, as concatenated reads give
            cut = len(part) // 2
            batches.append(pa.concat_tables([table(part[:cut]), table(part[cut:])]))
        else:
            batches.append(table(part))
        start += size
    return batches


def apply_all(state: ShardState, batches: list[pa.Table]) -> None:
    for batch in batches:
        state.apply_rows(batch)


def expected_pins(live: dict[str, Event]) -> dict[str, PinInfo]:
    return {
        pin_id: PinInfo(pin_id, event.title or "", event.board or "", event.version)
        for pin_id, event in live.items()
    }


def vector_of(event: Event) -> np.ndarray:
    assert event.vector is not None, event
    return event.vector


def exact_search(live: dict[str, Event], queries: np.ndarray, k: int) -> list[list[str]]:
    ids = sorted(live)
    if not ids:
        return [[] for _ in queries]
    matrix = np.stack([vector_of(live[pin_id]) for pin_id in ids]).astype(np.float64)
    scores = queries.astype(np.float64) @ matrix.T
    return [[ids[i] for i in np.argsort(-row, kind="stable")[:k]] for row in scores]


@pytest.fixture(params=[0, 1, 2])
def seed(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def test_live_pins_equal_the_oracle_fold(seed: int) -> None:
    log = make_log(seed)
    live = fold(log)
    state = ShardState(ShardsConfig(dim=DIM))
    apply_all(state, messy_batches(log, seed + 100))
    assert state.live_pins() == expected_pins(live)
    assert len(state) == len(live)
    assert 0 < len(live) < len({event.pin_id for event in log})  # some pins are deleted


@pytest.mark.parametrize("k", [1, 10, 1000])
def test_search_equals_exact_search_over_the_live_set(seed: int, k: int) -> None:
    log = make_log(seed)
    live = fold(log)
    state = ShardState(ShardsConfig(dim=DIM))
    apply_all(state, messy_batches(log, seed + 100))
    rng = np.random.default_rng(seed + 200)
    # Random queries, and every vector ever written: old vectors of updated pins included.
    ever_written = np.stack([vector_of(e) for e in log if e.op == "upsert"])
    queries = np.concatenate([rng.standard_normal((20, DIM)), ever_written]).astype(np.float32)
    results = state.search(queries, k)
    expected = exact_search(live, queries, k)
    assert [[hit["pin_id"] for hit in row] for row in results] == expected
    for query, row in zip(queries, results, strict=True):
        events = [live[hit["pin_id"]] for hit in row]
        assert [(hit["title"], hit["board"]) for hit in row] == [(e.title, e.board) for e in events]
        want = np.array([query @ vector_of(e) for e in events])
        np.testing.assert_allclose([hit["score"] for hit in row], want, rtol=1e-5, atol=1e-5)


def test_search_never_returns_deleted_or_superseded_pins(seed: int) -> None:
    log = make_log(seed)
    live = fold(log)
    state = ShardState(ShardsConfig(dim=DIM))
    apply_all(state, messy_batches(log, seed + 100))
    upserts = [event for event in log if event.vector is not None]
    # Unit vectors: a stored copy of a query vector would come first, with score 1.
    queries = np.stack([vector_of(event) for event in upserts])
    results = state.search(queries, len(live))
    for event, hits in zip(upserts, results, strict=True):
        assert len(hits) == len(live)
        if event.pin_id not in live:
            assert event.pin_id not in {hit["pin_id"] for hit in hits}
        if live.get(event.pin_id) is event:
            assert hits[0]["pin_id"] == event.pin_id
            assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
        else:
            assert hits[0]["score"] < 1.0 - 1e-3


def test_get_returns_the_newest_title_and_vector_or_none(seed: int) -> None:
    log = make_log(seed)
    live = fold(log)
    state = ShardState(ShardsConfig(dim=DIM))
    apply_all(state, messy_batches(log, seed + 100))
    for pin_id in {event.pin_id for event in log}:
        found = state.get(pin_id)
        if pin_id not in live:
            assert found is None
            continue
        event = live[pin_id]
        assert found is not None
        assert (found["pin_id"], found["title"], found["board"], found["version"]) == (
            pin_id,
            event.title,
            event.board,
            event.version,
        )
        np.testing.assert_array_equal(found["vector"], event.vector)
    assert state.get("never-seen") is None


def test_replaying_the_whole_log_changes_nothing(seed: int) -> None:
    log = make_log(seed)
    state = ShardState(ShardsConfig(dim=DIM))
    apply_all(state, messy_batches(log, seed + 100))
    queries = np.random.default_rng(seed).standard_normal((10, DIM)).astype(np.float32)
    pins, results = state.live_pins(), state.search(queries, 25)
    state.apply_rows(table(log))
    apply_all(state, messy_batches(log, seed + 300))
    assert state.live_pins() == pins
    assert state.search(queries, 25) == results


def test_a_replica_built_from_the_log_in_order_matches_one_built_from_a_messy_delivery() -> None:
    log = make_log(9)
    ordered, messy = ShardState(ShardsConfig(dim=DIM)), ShardState(ShardsConfig(dim=DIM))
    ordered.apply_rows(table(log))
    apply_all(messy, messy_batches(log, 9))
    assert ordered.live_pins() == messy.live_pins() == expected_pins(fold(log))


def test_delete_then_older_upsert_stays_deleted() -> None:
    state = ShardState(ShardsConfig(dim=DIM))
    vector = np.ones(DIM, dtype=np.float32) / 4
    state.apply_rows(table([Event("p", "delete", 5)]))
    state.apply_rows(table([Event("p", "upsert", 3, vector, "old", "b")]))
    assert state.get("p") is None
    assert state.live_pins() == {}
    assert state.search(vector[None, :], 5) == [[]]
    state.apply_rows(table([Event("p", "upsert", 6, vector, "new", "b")]))
    assert state.live_pins() == {"p": PinInfo("p", "new", "b", 6)}


def test_empty_batch_and_empty_state() -> None:
    state = ShardState(ShardsConfig(dim=DIM))
    state.apply_rows(SCHEMA.empty_table())
    assert len(state) == 0
    assert state.live_pins() == {}
    assert state.search(np.ones((2, DIM), dtype=np.float32), 3) == [[], []]


def test_upsert_without_a_vector_raises_and_applies_nothing() -> None:
    state = ShardState(ShardsConfig(dim=DIM))
    good = Event("a", "upsert", 1, np.ones(DIM, dtype=np.float32), "A", "b")
    state.apply_rows(table([good]))
    with pytest.raises(ValueError, match="no vector"):
        state.apply_rows(table([Event("b", "upsert", 2, None, "B", "b"), Event("a", "delete", 3)]))
    assert state.live_pins() == {"a": PinInfo("a", "A", "b", 1)}


@pytest.mark.parametrize("growing_limit", [50_000, 40])
def test_a_replica_restored_from_a_snapshot_and_the_log_suffix_equals_the_fold(
    tmp_path, growing_limit: int
) -> None:
    """Apply the log up to an offset, snapshot, restore, then replay from an earlier offset."""
    log = make_log(4)
    config = ShardsConfig(dim=DIM, sealed_index="Flat", growing_limit=growing_limit)
    first = ShardState(config)
    first.apply_rows(table(log[:350]))
    first.save(str(tmp_path), log_offsets={4: 350})
    restored = ShardState.load_latest(str(tmp_path))
    assert restored.index.log_offsets == {4: 350}
    assert restored.live_pins() == first.live_pins()
    restored.apply_rows(table(log[300:]))  # at-least-once: an overlap with the snapshot
    live = fold(log)
    assert restored.live_pins() == expected_pins(live)
    queries = np.random.default_rng(4).standard_normal((10, DIM)).astype(np.float32)
    assert [[h["pin_id"] for h in row] for row in restored.search(queries, 7)] == exact_search(
        live, queries, 7
    )


def test_a_state_snapshot_with_damaged_pins_is_refused(tmp_path) -> None:
    state = ShardState(ShardsConfig(dim=DIM))
    state.apply_rows(table(make_log(5)[:50]))
    uri = state.save(str(tmp_path))
    pins = tmp_path / uri.rsplit("/", 1)[1] / "growing-payload.arrow"
    pins.write_bytes(pins.read_bytes()[:-4])
    with pytest.raises(CorruptSnapshot, match=r"growing-payload\.arrow fails its checksum"):
        ShardState.load(str(tmp_path))
