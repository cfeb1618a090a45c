"""A poll batch: the records of one Kafka poll, packed into a single Arrow row.

The ingest pipeline is one long-running Ray Data execution over an unbounded
source. Ray Data holds small blocks back until they reach its target block
size, so the pipeline runs with a target of one byte and packs each poll into
one row of list columns: every block then moves on at once, is never sliced,
and one poll is one embedder batch. Stages unpack, work on flat records, pack.
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


def pack(records: pa.Table) -> pa.Table:
    """Turn n flat records into one row whose columns are lists of n values."""
    columns = {}
    for name in records.column_names:
        values = records.column(name).combine_chunks()
        columns[name] = pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), values)
    return pa.table(columns)


def unpack(polls: pa.Table) -> pa.Table:
    """Turn poll rows back into flat records (the inverse of `pack`, over many rows)."""
    columns = {}
    for name in polls.column_names:
        column = polls.column(name).combine_chunks()
        columns[name] = column.flatten()
    return pa.table(columns)


def empty_records() -> pa.Table:
    """A flat record table with no rows."""
    return RECORD_SCHEMA.empty_table()
