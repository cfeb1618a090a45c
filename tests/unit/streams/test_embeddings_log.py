"""The embeddings-log record format: Arrow IPC rows that decode exactly, or raise ArrowInvalid."""

import numpy as np
import pyarrow as pa
import pytest

from streams.embeddings_log import decode_rows, encode_rows, log_schema, partition_rows
from streams.embeddings_log import log_rows as build_rows
from streams.routing import shard_of

DIM = 8


def log_rows(n: int, seed: int = 0, dim: int = DIM) -> pa.Table:
    """n log rows; every 4th is a delete (null vector, null title and board)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    deletes = [i % 4 == 3 for i in range(n)]
    return pa.table(
        {
            "pin_id": [f"pin-{i}" for i in range(n)],
            "op": ["delete" if d else "upsert" for d in deletes],
            "version": list(range(100, 100 + n)),
            "generation": ["minilm-l6-v2-base"] * n,
            "vector": pa.array(
                [None if d else v.tolist() for d, v in zip(deletes, vectors, strict=True)],
                pa.list_(pa.float32(), dim),
            ),
            "title": [None if d else f"Walnut table {i} ☕" for i, d in enumerate(deletes)],
            "board": [None if d else "Mid-Century Living Room" for d in deletes],
            "event_time": [1_700_000_000_000 + i for i in range(n)],
        },
        schema=log_schema(dim),
    )


def test_log_schema() -> None:
    schema = log_schema(384)
    assert schema.names == [
        "pin_id",
        "op",
        "version",
        "generation",
        "vector",
        "title",
        "board",
        "event_time",
    ]
    vector_type = schema.field("vector").type
    assert isinstance(vector_type, pa.FixedSizeListType)
    assert vector_type.list_size == 384
    assert vector_type.value_type == pa.float32()
    assert schema.field("version").type == pa.int64()
    assert schema.field("event_time").type == pa.int64()
    assert all(field.nullable for field in schema)


@pytest.mark.parametrize("n", [0, 1, 13, 300])
def test_round_trip_is_exact(n: int) -> None:
    rows = log_rows(n)
    back = decode_rows(encode_rows(rows))
    assert back.schema == log_schema(DIM)
    assert back.equals(rows)


def test_vectors_are_bit_exact_and_deletes_null() -> None:
    rows = log_rows(20, seed=3)
    back = decode_rows(encode_rows(rows)).column("vector").combine_chunks()
    expected = rows.column("vector").combine_chunks()
    ops = rows.column("op").to_pylist()
    assert back.is_null().to_pylist() == [op == "delete" for op in ops]
    for got, want in zip(back.to_pylist(), expected.to_pylist(), strict=True):
        if want is None:
            assert got is None
        else:
            np.testing.assert_array_equal(np.array(got, np.float32), np.array(want, np.float32))


def test_multi_chunk_table_round_trips() -> None:
    rows = pa.concat_tables([log_rows(5, seed=1), log_rows(7, seed=2)])
    assert rows.column("vector").num_chunks == 2
    assert decode_rows(encode_rows(rows)).equals(rows)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x00" * 16, b"\xff" * 100, bytes(range(256))],
    ids=["empty", "text", "zeros", "ones", "bytes"],
)
def test_garbage_raises_arrow_invalid(data: bytes) -> None:
    with pytest.raises(pa.ArrowInvalid):
        decode_rows(data)


def test_every_truncation_raises_arrow_invalid() -> None:
    data = encode_rows(log_rows(6))
    for cut in range(len(data)):
        with pytest.raises(pa.ArrowInvalid):
            decode_rows(data[:cut])


def test_flipped_bytes_raise_arrow_invalid_or_decode_to_a_valid_table() -> None:
    """Kafka's CRC catches corruption in transit; a bad writer must still never crash a reader.

    Without full validation some of these decoded to tables whose offsets point out of
    bounds (reading them segfaulted) or raised UnicodeDecodeError / ArrowNotImplementedError.
    """
    data = encode_rows(log_rows(3))
    raised = 0
    for position in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            corrupt = bytearray(data)
            corrupt[position] ^= mask
            try:
                rows = decode_rows(bytes(corrupt))
            except pa.ArrowInvalid:
                raised += 1
            else:
                rows.validate(full=True)
                rows.to_pylist()
    assert raised > len(data)  # most corruptions are detected


SHARDS = 4


def first_axes_owner(vectors: np.ndarray) -> np.ndarray:
    """An owner function as the router's: a pure function of the vector (here its largest
    of the first SHARDS coordinates), so a re-embedded pin may move shard."""
    return np.argmax(vectors[:, :SHARDS], axis=1).astype(np.int64)


def event_rows(events: list[tuple[str, str, int, np.ndarray | None]]) -> pa.Table:
    """Log rows of (pin_id, op, version, vector or None) events."""
    vectors = pa.array(
        [None if v is None else v.tolist() for _, _, _, v in events], pa.list_(pa.float32(), DIM)
    )
    return build_rows(
        pin_ids=[e[0] for e in events],
        ops=[e[1] for e in events],
        versions=[e[2] for e in events],
        generation="g",
        vectors=vectors,
        titles=[None if e[1] == "delete" else f"t{e[2]}" for e in events],
        boards=[None if e[1] == "delete" else "b" for e in events],
        event_times=[1_700_000_000_000 + e[2] for e in events],
        dim=DIM,
    )


def towards(shard: int, seed: int) -> np.ndarray:
    """A vector that first_axes_owner gives to `shard`."""
    vector = np.random.default_rng(seed).uniform(0, 0.1, DIM).astype(np.float32)
    vector[shard] = 1.0
    return vector


def lww_fold(tables: list[pa.Table]) -> dict[str, tuple[int, str, list[float] | None]]:
    """The oracle of one shard: per pin, its newest row by version (op and vector)."""
    newest: dict[str, tuple[int, str, list[float] | None]] = {}
    for table in tables:
        for row in table.to_pylist():
            if row["pin_id"] not in newest or row["version"] > newest[row["pin_id"]][0]:
                newest[row["pin_id"]] = (row["version"], row["op"], row["vector"])
    return newest


def test_hash_partitions_are_shard_of_the_pin_id_in_row_order() -> None:
    rows = log_rows(40)
    parts = partition_rows(rows, SHARDS)
    assert sum(t.num_rows for t in parts.values()) == 40
    for shard, table in parts.items():
        pin_ids = table.column("pin_id").to_pylist()
        assert {shard_of(p, SHARDS) for p in pin_ids} == {shard}
        assert table.column("version").to_pylist() == sorted(table.column("version").to_pylist())


def test_a_moved_pin_is_a_tombstone_on_every_other_shard() -> None:
    rows = event_rows(
        [
            ("p", "upsert", 1, towards(0, 1)),
            ("p", "upsert", 2, towards(2, 2)),
            ("q", "delete", 3, None),
        ]
    )
    parts = partition_rows(rows, SHARDS, first_axes_owner)
    assert sorted(parts) == list(range(SHARDS))
    ops = {
        s: list(
            zip(t["pin_id"].to_pylist(), t["op"].to_pylist(), t["version"].to_pylist(), strict=True)
        )
        for s, t in parts.items()
    }
    assert ops[0] == [("p", "upsert", 1), ("p", "delete", 2), ("q", "delete", 3)]
    assert ops[2] == [("p", "delete", 1), ("p", "upsert", 2), ("q", "delete", 3)]
    assert ops[1] == ops[3] == [("p", "delete", 1), ("p", "delete", 2), ("q", "delete", 3)]
    tombstone = parts[0].slice(1, 1).to_pylist()[0]
    assert tombstone["vector"] is None and tombstone["title"] is None
    assert tombstone["event_time"] == 1_700_000_000_002 and tombstone["generation"] == "g"
    for table in parts.values():  # every part is a valid log record
        assert decode_rows(encode_rows(table)).equals(table)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fold_of_every_shard_is_the_fold_of_the_events(seed: int) -> None:
    """Every pin live on exactly one shard, with its newest vector, whatever the batching and
    the replays (at-least-once delivery writes suffixes again)."""
    rng = np.random.default_rng(seed)
    events = []
    for version in range(600):
        pin_id = f"pin-{int(rng.integers(50))}"
        if rng.random() < 0.2:
            events.append((pin_id, "delete", version, None))
        else:
            events.append((pin_id, "upsert", version, towards(int(rng.integers(SHARDS)), version)))
    delivered = events + events[int(rng.integers(600)) :] + events[int(rng.integers(600)) :]
    per_shard: dict[int, list[pa.Table]] = {s: [] for s in range(SHARDS)}
    start = 0
    while start < len(delivered):
        size = int(rng.integers(1, 80))
        for shard, table in partition_rows(
            event_rows(delivered[start : start + size]), SHARDS, first_axes_owner
        ).items():
            per_shard[shard].append(table)
        start += size
    oracle: dict[str, np.ndarray] = {}
    for pin_id, op, _, vector in events:
        if op == "upsert":
            assert vector is not None
            oracle[pin_id] = vector
        else:
            oracle.pop(pin_id, None)
    live: dict[str, list[int]] = {}
    for shard, tables in per_shard.items():
        for pin_id, (_, op, vector) in lww_fold(tables).items():
            if op == "upsert":
                live.setdefault(pin_id, []).append(shard)
                np.testing.assert_array_equal(np.array(vector, np.float32), oracle[pin_id])
                assert first_axes_owner(oracle[pin_id][None, :])[0] == shard
    assert set(live) == set(oracle)
    assert all(len(shards) == 1 for shards in live.values()), "a pin live on two shards"


def test_an_owner_function_that_breaks_its_contract_is_refused() -> None:
    rows = event_rows([("p", "upsert", 1, towards(0, 1)), ("q", "upsert", 2, towards(1, 2))])
    with pytest.raises(ValueError, match="outside"):
        partition_rows(rows, SHARDS, lambda v: np.full(len(v), SHARDS))
    with pytest.raises(ValueError, match="owner_shards gave"):
        partition_rows(rows, SHARDS, lambda v: np.zeros(len(v) + 1, np.int64))
    assert partition_rows(rows.slice(0, 0), SHARDS, first_axes_owner) == {}
