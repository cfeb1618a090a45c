"""The embeddings log: topic `pin-embeddings`, the write-ahead log of every shard.

Partition = shard. Each Kafka record holds one Arrow IPC stream of rows:
pin_id, op, version, generation, vector (null for deletes), title, board,
event_time. A replica rebuilds its shard from this log alone.

Which shard a row goes to (`partition_rows`): with hash routing, shard_of(pin_id); with
centroid routing, an upsert goes to the shard owning its vector (a function passed in, the
router's `owner_shards`), and every other shard gets a tombstone of the same version. The
writer keeps no pin -> shard state (it would have to be rebuilt from the log after a crash,
and be shared by every ingest process), so it cannot know which shard held the pin before:
a tombstone everywhere else deletes it from whichever that was, and last-writer-wins by
version makes the extra tombstones, and any replay of them, change nothing elsewhere. A
delete goes to every shard for the same reason. Shards prune tombstones after later
snapshots (shards/shard_index.py), so they do not accumulate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from streams.events import PinEvent
from streams.exceptions import InvalidLogRecord
from streams.kafka_io import DEFAULT_CLIENT, KafkaClientSettings, LazyProducer
from streams.routing import shard_of

ROWS_PER_MESSAGE = 256
# Centroid routing: the owner shard of each upsert's vector, given an (n, dim) float32 matrix.
OwnerShards = Callable[[np.ndarray], np.ndarray]
# The end-of-stream message every Arrow IPC stream writer closes with.
_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def log_schema(dim: int) -> pa.Schema:
    """The Arrow schema of embeddings-log rows for `dim`-dimensional vectors."""
    return pa.schema(
        [
            ("pin_id", pa.string()),
            ("op", pa.string()),
            ("version", pa.int64()),
            ("generation", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("title", pa.string()),
            ("board", pa.string()),
            ("event_time", pa.int64()),
        ]
    )


def log_rows(
    *,
    pin_ids: Any,
    ops: Any,
    versions: Any,
    generation: str,
    vectors: Any,
    titles: Any,
    boards: Any,
    event_times: Any,
    dim: int,
) -> pa.Table:
    """The one builder of embeddings-log rows: each column (a sequence or an Arrow array;
    `vectors` an (n, dim) float array or a fixed-size-list array, null for deletes) under
    its name, checked against the schema; `generation` is every row's."""
    if isinstance(vectors, np.ndarray):
        vectors = pa.FixedSizeListArray.from_arrays(
            pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1)), dim
        )
    return pa.table(
        {
            "pin_id": pin_ids,
            "op": ops,
            "version": versions,
            "generation": pa.array([generation] * len(pin_ids), pa.string()),
            "vector": vectors,
            "title": titles,
            "board": boards,
            "event_time": event_times,
        },
        schema=log_schema(dim),
    )


def upsert_rows(
    events: Sequence[PinEvent], vectors: np.ndarray, version: int, generation: str
) -> pa.Table:
    """Log rows upserting `events` with their `vectors`, all at one version (tests, benches)."""
    n, dim = vectors.shape
    if n != len(events):
        raise ValueError(f"{len(events)} events but {n} vectors")
    return log_rows(
        pin_ids=[e.pin_id for e in events],
        ops=["upsert"] * n,
        versions=[version] * n,
        generation=generation,
        vectors=vectors,
        titles=[e.title for e in events],
        boards=[e.board for e in events],
        event_times=[e.event_time for e in events],
        dim=dim,
    )


def delete_rows(pin_ids: Sequence[str], version: int, generation: str, dim: int) -> pa.Table:
    """Log rows deleting `pin_ids`, all at one version (tests, benches)."""
    n = len(pin_ids)
    return log_rows(
        pin_ids=list(pin_ids),
        ops=["delete"] * n,
        versions=[version] * n,
        generation=generation,
        vectors=pa.nulls(n, pa.list_(pa.float32(), dim)),
        titles=pa.nulls(n, pa.string()),
        boards=pa.nulls(n, pa.string()),
        event_times=[0] * n,
        dim=dim,
    )


def encode_rows(rows: pa.Table) -> bytes:
    """Serialise log rows as one Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return bytes(sink.getvalue())


def decode_rows(data: bytes) -> pa.Table:
    """Read the rows of one embeddings-log record (raises pyarrow.ArrowInvalid if corrupt)."""
    # A stream cut between messages reads as fewer rows, silently; encode_rows always ends so.
    if not data.endswith(_END_OF_STREAM):
        raise pa.ArrowInvalid("embeddings-log record is truncated: no end-of-stream marker")
    try:
        with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
            rows = reader.read_all()
        # The reader checks only buffer sizes; bad offsets would read out of bounds (segfault).
        rows.validate(full=True)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise pa.ArrowInvalid(f"corrupt embeddings-log record: {exc}") from exc
    return rows


def checked_rows(value: bytes | None, schema: pa.Schema, generation: str) -> pa.Table:
    """The rows of one log record that a shard of `generation` may apply; InvalidLogRecord
    (with the reason) for a record that is undecodable, of another schema or generation."""
    if value is None:
        raise InvalidLogRecord("null record")
    try:
        rows = decode_rows(value)
    except pa.ArrowInvalid as exc:
        raise InvalidLogRecord(str(exc)) from exc
    if not rows.schema.equals(schema):
        raise InvalidLogRecord(f"not the embeddings-log schema: {rows.schema}")
    foreign = set(rows.column("generation").to_pylist()) - {generation}
    if foreign:  # vectors of two models never meet in one index
        raise InvalidLogRecord(f"rows of generation {sorted(foreign)} in {generation}'s log")
    return rows


def partition_rows(
    rows: pa.Table, num_shards: int, owner_shards: OwnerShards | None = None
) -> dict[int, pa.Table]:
    """The rows each shard's partition gets, in row order: by shard_of(pin_id) (hash routing),
    or, given `owner_shards`, each upsert on its vector's owner shard with a tombstone of the
    same version on every other shard, and each delete on every shard (see the module doc)."""
    if owner_shards is None:
        by_shard: dict[int, list[int]] = defaultdict(list)
        for index, pin_id in enumerate(rows.column("pin_id").to_pylist()):
            by_shard[shard_of(pin_id, num_shards)].append(index)
        return {shard: rows.take(pa.array(indices)) for shard, indices in sorted(by_shard.items())}
    n = rows.num_rows
    if n == 0:
        return {}
    upserts = np.asarray(rows.column("op").to_numpy(zero_copy_only=False) == "upsert")
    owners = np.full(n, -1, dtype=np.int64)
    if upserts.any():
        owners[upserts] = _checked_owners(owner_shards, _upsert_vectors(rows, upserts), num_shards)
    # Rows [0, n) as they are, rows [n, 2n) their tombstones: each shard takes one of the two.
    both = pa.concat_tables([rows, _tombstones(rows)])
    positions = np.arange(n)
    return {
        shard: both.take(pa.array(np.where(owners == shard, positions, positions + n)))
        for shard in range(num_shards)
    }


def _upsert_vectors(rows: pa.Table, upserts: np.ndarray) -> np.ndarray:
    column = rows.filter(pa.array(upserts)).column("vector").combine_chunks()
    if column.null_count:
        raise ValueError("an upsert row carries no vector")
    dim = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values.reshape(len(column), dim), dtype=np.float32)


def _checked_owners(owner_shards: OwnerShards, vectors: np.ndarray, num_shards: int) -> np.ndarray:
    owners = np.asarray(owner_shards(vectors))
    if owners.shape != (vectors.shape[0],) or owners.dtype.kind not in "iu":
        raise ValueError(f"owner_shards gave {owners.shape} {owners.dtype} for {vectors.shape[0]}")
    if owners.size and not (int(owners.min()) >= 0 and int(owners.max()) < num_shards):
        raise ValueError(f"owner_shards gave a shard outside [0, {num_shards})")
    return owners.astype(np.int64, copy=False)


def _tombstones(rows: pa.Table) -> pa.Table:
    """A delete row for each row: same pin, version, generation and event time."""
    n, dim = rows.num_rows, rows.schema.field("vector").type.list_size
    return pa.table(
        {
            "pin_id": rows.column("pin_id"),
            "op": pa.array(["delete"] * n, pa.string()),
            "version": rows.column("version"),
            "generation": rows.column("generation"),
            "vector": pa.nulls(n, pa.list_(pa.float32(), dim)),
            "title": pa.nulls(n, pa.string()),
            "board": pa.nulls(n, pa.string()),
            "event_time": rows.column("event_time"),
        },
        schema=rows.schema,
    )


class EmbeddingsLogWriter(LazyProducer):
    """Writes log rows to the shard partitions; the producer is created on first use.

    owner_shards: None for hash routing; the router's `owner_shards` for centroid routing.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        num_shards: int,
        client: KafkaClientSettings = DEFAULT_CLIENT,
        owner_shards: OwnerShards | None = None,
    ) -> None:
        super().__init__(bootstrap, client)
        self.topic = topic
        self.num_shards = num_shards
        self.owner_shards = owner_shards

    def write(self, rows: pa.Table) -> int:
        """Send rows to their shards' partitions (call `flush` to wait for the acks)."""
        sent = 0
        for shard, shard_rows in partition_rows(rows, self.num_shards, self.owner_shards).items():
            for start in range(0, shard_rows.num_rows, ROWS_PER_MESSAGE):
                chunk = shard_rows.slice(start, ROWS_PER_MESSAGE)
                self._send(self.topic, value=encode_rows(chunk), partition=shard)
                sent += 1
        return sent
