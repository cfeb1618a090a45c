"""What lets a shard hold billions, against oracles: colliding pin keys, pruned tombstones,
filters with bounded work, snapshot swaps that share segments, and the key table itself."""

import numpy as np
import pyarrow as pa
import pytest

from conf.config import ShardsConfig
from shards.key_table import TOMBSTONE, KeyTable
from shards.shard_index import ShardIndex, Where
from shards.shard_state import ShardState
from shards.snapshot import open_snapshot
from streams.routing import pin_keys
from tests.unit.shards.test_shard_state import (
    DIM,
    Event,
    apply_all,
    exact_search,
    expected_pins,
    fold,
    make_log,
    messy_batches,
    table,
)


@pytest.mark.parametrize("seed", [0, 1])
def test_pins_whose_keys_collide_stay_apart(seed: int, tmp_path) -> None:
    """A 3-bit key space: 60 pins on 8 keys. Every pin is still its own entry, through
    updates, deletes, replays and a snapshot round trip."""
    config = ShardsConfig(dim=DIM, key_bits=3, growing_limit=64, sealed_index="Flat")
    log = make_log(seed)
    assert len(set(pin_keys([e.pin_id for e in log], 3).tolist())) <= 8
    state = ShardState(config)
    apply_all(state, messy_batches(log, seed))
    state.index.seal()
    live = fold(log)
    assert state.live_pins() == expected_pins(live)
    queries = np.stack([e.vector for e in list(live.values())[:5] if e.vector is not None])
    assert [[h["pin_id"] for h in row] for row in state.search(queries, 7)] == exact_search(
        live, queries, 7
    )
    some = next(iter(live.values()))
    found = state.get(some.pin_id)
    assert found is not None and found["title"] == some.title
    np.testing.assert_array_equal(found["vector"], some.vector)
    restored = ShardState.load(state.save(str(tmp_path)))
    assert restored.live_pins() == expected_pins(live)
    more = make_log(seed + 10, n_events=200)
    shifted = [Event(e.pin_id, e.op, e.version + 1_000, e.vector, e.title, e.board) for e in more]
    apply_all(restored, [table(shifted)])
    assert restored.live_pins() == expected_pins(fold(log + shifted))


def test_a_pin_never_replaces_another_with_the_same_key() -> None:
    config = ShardsConfig(dim=DIM, key_bits=1)
    state = ShardState(config)
    vectors = np.eye(DIM, dtype=np.float32)
    events = [Event(f"p{i}", "upsert", i, vectors[i], f"t{i}", "b") for i in range(6)]
    state.apply_rows(table(events))
    assert sorted(state.live_pins()) == [f"p{i}" for i in range(6)]
    state.apply_rows(table([Event("p3", "delete", 10)]))
    assert sorted(state.live_pins()) == ["p0", "p1", "p2", "p4", "p5"]
    hits = state.search(vectors[:6], 5)
    assert [row[0]["pin_id"] for i, row in enumerate(hits) if i != 3] == [
        "p0",
        "p1",
        "p2",
        "p4",
        "p5",
    ]
    assert all(hit["pin_id"] != "p3" for row in hits for hit in row)


def test_tombstones_are_pruned_after_a_later_snapshot(tmp_path) -> None:
    state = ShardState(ShardsConfig(dim=DIM, growing_limit=100, sealed_index="Flat"))
    vectors = np.random.default_rng(0).standard_normal((1_000, DIM)).astype(np.float32)
    state.apply_rows(
        table([Event(f"p{i}", "upsert", i, vectors[i], "t", "b") for i in range(1_000)])
    )
    state.apply_rows(table([Event(f"p{i}", "delete", 1_000 + i) for i in range(900)]))
    assert state.index.stats()["tombstones"] == 900
    first = state.save(str(tmp_path), {0: 2})
    assert state.index.stats()["tombstones"] == 900  # the first snapshot holds them
    # An older upsert replayed after the delete still loses.
    state.apply_rows(table([Event("p5", "upsert", 5, vectors[5], "old", "b")]))
    assert "p5" not in state.live_pins()
    second = state.save(str(tmp_path), {0: 2})
    assert state.index.stats()["tombstones"] == 0 and state.index.stats()["ids"] == 100
    assert ShardState.load(first).index.stats()["tombstones"] == 900
    reloaded = ShardState.load(second)
    assert reloaded.index.stats()["ids"] == 100
    assert sorted(reloaded.live_pins()) == sorted(f"p{i}" for i in range(900, 1_000))


def test_a_rare_board_filter_examines_only_its_rows() -> None:
    """20,000 pins on 1,000 boards (0.1 % each) in an IVF segment: a board filter scores
    its 20 rows per query, not a probe of the lists; a board matching nothing scores none."""
    n, boards = 20_000, 1_000
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    config = ShardsConfig(dim=DIM, sealed_index="IVF64,Flat", nprobe=8, growing_limit=n)
    index = ShardIndex(config)
    index.upsert(np.arange(n), vectors, tags=np.arange(n) % boards)
    index.seal()
    queries = rng.standard_normal((5, DIM)).astype(np.float32)
    before = index.stats()["rows_examined"]
    _, ids = index.search(queries, 10, Where.of([7]))
    assert index.stats()["rows_examined"] - before == 20 * len(queries)
    passing = np.flatnonzero(np.arange(n) % boards == 7)
    exact = passing[np.argsort(-(queries @ vectors[passing].T), axis=1, kind="stable")[:, :10]]
    np.testing.assert_array_equal(ids, exact)
    before = index.stats()["rows_examined"]
    _scores, ids = index.search(queries, 10, Where.of([]))
    assert index.stats()["rows_examined"] == before and (ids == -1).all()
    # A filter matching most rows goes through FAISS with a selector: only passing ids.
    _, ids = index.search(queries, 10, Where.of(range(1, boards)))
    assert (ids >= 0).all() and (ids % boards != 0).all()


def test_exclusions_and_exact_search_with_a_filter() -> None:
    n = 3_000
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    index = ShardIndex(ShardsConfig(dim=DIM, sealed_index="IVF16,Flat", growing_limit=1_000))
    index.upsert(np.arange(n), vectors, tags=np.arange(n) % 3)
    index.wait_idle()
    queries = rng.standard_normal((4, DIM)).astype(np.float32)
    _, top = index.exact_search(queries, 5)
    where = Where.of([0, 1], exclude=top.ravel().tolist())
    _, ids = index.exact_search(queries, 5, where)
    passing = np.setdiff1d(np.flatnonzero(np.arange(n) % 3 != 2), top.ravel())
    exact = passing[np.argsort(-(queries @ vectors[passing].T), axis=1, kind="stable")[:, :5]]
    np.testing.assert_array_equal(ids, exact)


def test_a_newer_snapshot_shares_the_segments_it_has_in_common(tmp_path) -> None:
    config = ShardsConfig(
        dim=DIM, growing_limit=200, sealed_index="IVF4,Flat", compact_dead_fraction=1.0
    )
    state = ShardState(config)
    log = make_log(3, n_pins=1_000, n_events=1_000)
    state.apply_rows(table(log[:800]))
    state.index.seal()
    served = ShardState.load(state.save(str(tmp_path), {0: 1}))
    state.apply_rows(table(log[800:]))
    state.index.seal()
    swapped = ShardState.from_snapshot(
        open_snapshot(state.save(str(tmp_path), {0: 2})), share_with=served
    )
    held = {s.digest: s for s in served.index._segments}
    common = [s for s in swapped.index._segments if s.digest in held]
    assert len(common) >= 3 and len(swapped.index._segments) > len(common)
    assert all(s.index is held[s.digest].index for s in common)
    assert swapped.live_pins() == expected_pins(fold(log))
    # Deaths in the newer state do not leak into the served one, which shares the index.
    deletes = [Event(e.pin_id, "delete", 5_000 + i) for i, e in enumerate(log[:50])]
    swapped.apply_rows(table(deletes))
    assert served.live_pins() == expected_pins(fold(log[:800]))
    assert swapped.live_pins() == expected_pins(fold(log + deletes))


def test_the_key_table_equals_a_dict() -> None:
    rng = np.random.default_rng(4)
    table_, oracle = KeyTable(), {}
    for step in range(300):
        ids = np.unique(rng.integers(0, 20_000, size=int(rng.integers(1, 400))))
        versions = rng.integers(0, 1 << 40, size=ids.size)
        slots = rng.integers(-1, 5, size=ids.size).astype(np.int32)
        table_.put(ids, versions=versions, owners=ids * 3, slots=slots, positions=step)
        oracle.update(
            {int(i): (int(v), int(s)) for i, v, s in zip(ids, versions, slots, strict=True)}
        )
        if step % 50 == 49:
            removed = table_.prune(lambda c: c["slots"] == TOMBSTONE)
            dead = [key for key, (_, slot) in oracle.items() if slot == TOMBSTONE]
            assert removed == len(dead)
            for key in dead:
                del oracle[key]
    assert len(table_) == len(oracle)
    probe = np.arange(20_000, dtype=np.int64)
    versions = table_.lookup("versions", probe, -7)
    slots = table_.lookup("slots", probe, -9)
    for key in range(20_000):
        want = oracle.get(key)
        assert (versions[key], slots[key]) == ((-7, -9) if want is None else want)
    columns = table_.columns()
    assert (np.diff(columns["ids"]) > 0).all()
    np.testing.assert_array_equal(columns["owners"], columns["ids"] * 3)


def test_payload_rows_come_back_in_the_order_asked() -> None:
    schema = pa.schema([("name", pa.string())])
    index = ShardIndex(ShardsConfig(dim=DIM, growing_limit=10, sealed_index="Flat"), None, schema)
    vectors = np.random.default_rng(5).standard_normal((25, DIM)).astype(np.float32)
    names = pa.table({"name": [f"n{i}" for i in range(25)]}, schema=schema)
    index.upsert(np.arange(25) * 10, vectors, payload=names)
    index.wait_idle()
    asked = np.array([240, 0, 130, 999, 50], dtype=np.int64)
    live, rows = index.payload(asked)
    assert live.tolist() == [True, True, True, False, True]
    assert rows.column("name").to_pylist() == ["n24", "n0", "n13", "n5"]
