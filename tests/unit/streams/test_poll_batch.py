"""pack/unpack: one poll is one row of list columns, and unpack gives the records back."""

import pyarrow as pa
import pytest

from streams.poll_batch import RECORD_SCHEMA, empty_records, pack, spans_of, spans_table, unpack


def records(n: int, start: int = 0) -> pa.Table:
    """n flat records with offsets start.., a null key every 3rd and a null value every 5th."""
    rows = range(start, start + n)
    return pa.table(
        {
            "partition": pa.array([i % 4 for i in rows], pa.int32()),
            "offset": pa.array(list(rows), pa.int64()),
            "timestamp_ms": pa.array([1_700_000_000_000 + i for i in rows], pa.int64()),
            "key": pa.array([None if i % 3 == 0 else f"pin-{i}".encode() for i in rows]),
            "value": pa.array([None if i % 5 == 0 else bytes([i % 256]) * (i % 7) for i in rows]),
        },
        schema=RECORD_SCHEMA,
    )


@pytest.mark.parametrize("n", [0, 1, 2, 37])
def test_round_trip(n: int) -> None:
    flat = records(n)
    packed = pack(flat, spans_table([]))
    assert packed.num_rows == 1
    assert packed.column_names == [*flat.column_names, "spans"]
    assert unpack(packed).equals(flat)


def test_packed_columns_are_lists_of_the_record_types() -> None:
    packed = pack(records(5), spans_table([]))
    for field in RECORD_SCHEMA:
        assert packed.schema.field(field.name).type == pa.list_(field.type)
        assert len(packed.column(field.name)[0]) == 5


def test_unpack_keeps_types_and_nulls() -> None:
    flat = records(16)
    back = unpack(pack(flat, spans_table([])))
    assert back.schema == RECORD_SCHEMA
    assert back.column("key").null_count == flat.column("key").null_count > 0
    assert back.column("value").null_count == flat.column("value").null_count > 0
    assert back.column("key").to_pylist() == flat.column("key").to_pylist()
    assert back.column("value").to_pylist() == flat.column("value").to_pylist()


def test_many_polls_unpack_to_all_records_in_order() -> None:
    sizes = [3, 0, 1, 10, 0, 7]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    polls = pa.concat_tables(
        [pack(records(n, start), spans_table([])) for n, start in zip(sizes, starts, strict=True)]
    )
    assert polls.num_rows == len(sizes)
    assert polls.column(0).num_chunks == len(sizes)  # as Ray Data hands them over
    assert unpack(polls).equals(records(sum(sizes)))


def test_unpack_of_a_sliced_block() -> None:
    """Ray Data may hand over a slice of a block: unpack must respect the slice's offsets."""
    polls = pa.concat_tables(
        [
            pack(records(4, 0), spans_table([])),
            pack(records(3, 4), spans_table([])),
            pack(records(5, 7), spans_table([])),
        ]
    )
    middle = polls.combine_chunks().slice(1, 1)
    assert unpack(middle).equals(records(3, 4))


def test_empty_records() -> None:
    empty = empty_records()
    assert empty.num_rows == 0
    assert empty.schema == RECORD_SCHEMA
    assert unpack(pack(empty, spans_table([]))).equals(empty)


def test_spans_travel_with_their_polls() -> None:
    """Each poll's span survives packing, concatenation, slicing and a stage's repack."""
    spans = [[(0, 0, 4)], [(1, 10, 10)], [(0, 4, 9), (1, 10, 12)]]
    polls = pa.concat_tables(
        [pack(records(n), spans_table(s)) for n, s in zip([4, 0, 5], spans, strict=True)]
    )
    assert [tuple(row.values()) for row in spans_of(polls).to_pylist()] == [
        span for poll in spans for span in poll
    ]
    middle = polls.combine_chunks().slice(2, 1)
    assert spans_of(middle).to_pylist() == [
        {"partition": 0, "start": 4, "end": 9},
        {"partition": 1, "start": 10, "end": 12},
    ]
    repacked = pack(unpack(polls), spans_of(polls))
    assert repacked.num_rows == 1
    assert spans_of(repacked).equals(spans_of(polls))
    assert "spans" not in unpack(repacked).column_names
