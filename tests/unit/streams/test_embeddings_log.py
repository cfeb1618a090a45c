"""The embeddings-log record format: Arrow IPC rows that decode exactly, or raise ArrowInvalid."""

import numpy as np
import pyarrow as pa
import pytest

from streams.embeddings_log import decode_rows, encode_rows, log_schema

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
