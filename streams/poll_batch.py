"""A poll batch: the records of one Kafka poll, packed into a single Arrow row.

The ingest pipeline is one long-running Ray Data execution over an unbounded
source. Ray Data holds small blocks back until they reach its target block
size, so the pipeline runs with a target of one byte and packs each poll into
one row of list columns: every block then moves on at once, is never sliced,
and one poll is one embedder batch. Stages unpack, work on flat records, pack.

A poll row also carries its span: per partition, the consumer's position before
and after the poll. Offsets need not be contiguous (compaction, transaction
markers, aborted transactions leave gaps), but consecutive spans are, so a commit
moves over the gaps by spans, never by counting records.
"""

from __future__ import annotations

import pyarrow as pa

RECORD_SCHEMA = pa.schema(
    [
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp_ms", pa.int64()),
        ("key", pa.binary()),
        ("value", pa.binary()),
    ]
)


SPAN_SCHEMA = pa.schema([("partition", pa.int32()), ("start", pa.int64()), ("end", pa.int64())])
SPANS = "spans"


def spans_table(spans: list[tuple[int, int, int]]) -> pa.Table:
    """(partition, start, end) triples: the positions a poll moved between, end exclusive."""
    partitions, starts, ends = zip(*spans, strict=True) if spans else ((), (), ())
    return pa.table([list(partitions), list(starts), list(ends)], schema=SPAN_SCHEMA)


def pack(records: pa.Table, spans: pa.Table) -> pa.Table:
    """Turn n flat records and their poll spans into one row whose columns are lists."""
    columns = {}
    for name in records.column_names:
        columns[name] = _one_list(records.column(name).combine_chunks())
    columns[SPANS] = _one_list(
        pa.StructArray.from_arrays(
            [spans.column(name).combine_chunks() for name in SPAN_SCHEMA.names],
            fields=list(SPAN_SCHEMA),
        )
    )
    return pa.table(columns)


def unpack(polls: pa.Table) -> pa.Table:
    """Turn poll rows back into flat records (the inverse of `pack`, over many rows)."""
    columns = {}
    for name in polls.column_names:
        if name != SPANS:
            columns[name] = polls.column(name).combine_chunks().flatten()
    return pa.table(columns)


def spans_of(polls: pa.Table) -> pa.Table:
    """The spans of every poll row, in row order."""
    flat = polls.column(SPANS).combine_chunks().flatten()
    return pa.table([flat.field(name) for name in SPAN_SCHEMA.names], schema=SPAN_SCHEMA)


def _one_list(values: pa.Array) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), values)


def empty_records() -> pa.Table:
    """A flat record table with no rows."""
    return RECORD_SCHEMA.empty_table()


def records_of(partition: int, keyed: list[tuple[bytes | None, bytes | None]]) -> pa.Table:
    """A flat record table of (key, value) pairs at offsets 0.. of one partition, timestamp 0:
    records as a read task would poll them, for tests and benchmarks."""
    return pa.table(
        {
            "partition": pa.array([partition] * len(keyed), pa.int32()),
            "offset": pa.array(range(len(keyed)), pa.int64()),
            "timestamp_ms": pa.array([0] * len(keyed), pa.int64()),
            "key": pa.array([key for key, _ in keyed], pa.binary()),
            "value": pa.array([value for _, value in keyed], pa.binary()),
        },
        schema=RECORD_SCHEMA,
    )
