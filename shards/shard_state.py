"""A shard's whole state: its vectors (ShardIndex) plus what the API returns about each pin.

Built only by applying embeddings-log rows, so any replica that applies the same
log reaches the same state, whatever the replays and duplicates.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pyarrow as pa

from conf.config import ShardsConfig
from shards.exceptions import CorruptSnapshot
from shards.shard_image import save_image
from shards.shard_index import ShardIndex
from shards.snapshot import LoadsSnapshots, Snapshot
from streams.routing import pin_key, pin_keys

PINS_FILE = "pins.arrow"
_PINS_SCHEMA = pa.schema(
    [
        ("key", pa.int64()),
        ("pin_id", pa.string()),
        ("title", pa.string()),
        ("board", pa.string()),
        ("version", pa.int64()),
    ]
)


# One query's hits, best first: dicts with pin_id, score, title and board. The one hits type
# of pinstream: shards return a list of them per query, the ingress merges them.
Hits = list[dict[str, Any]]


@dataclass(frozen=True)
class PinInfo:
    """What the API returns about an indexed pin besides its score."""

    pin_id: str
    title: str
    board: str
    version: int


class ShardState(LoadsSnapshots):
    """Applies log rows last-writer-wins by version; searchable from any thread meanwhile."""

    def __init__(self, config: ShardsConfig, index: ShardIndex | None = None) -> None:
        self.config = config
        self.index = ShardIndex(config) if index is None else index
        self._pins: dict[int, PinInfo] = {}
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.index)

    def apply_rows(self, rows: pa.Table) -> None:
        """Apply embeddings-log rows; replays and out-of-order duplicates change nothing."""
        if rows.num_rows == 0:
            return
        ops = np.array(rows.column("op").to_pylist())
        pin_ids = rows.column("pin_id").to_pylist()
        keys = pin_keys(pin_ids)
        versions = rows.column("version").to_numpy()
        upserts = ops == "upsert"
        with self._lock:
            if upserts.any():
                upsert_rows = rows.filter(pa.array(upserts))
                self.index.upsert(
                    keys[upserts], _vectors(upsert_rows, self.config.dim), versions[upserts]
                )
            if (~upserts).any():
                self.index.delete(keys[~upserts], versions[~upserts])
            titles = rows.column("title").to_pylist()
            boards = rows.column("board").to_pylist()
            for i, key in enumerate(keys.tolist()):
                if self.index.version(key) != versions[i]:
                    continue  # superseded by a newer event of the same pin
                if upserts[i]:
                    self._pins[key] = PinInfo(
                        pin_ids[i], titles[i] or "", boards[i] or "", int(versions[i])
                    )
                else:
                    self._pins.pop(key, None)

    def search(self, queries: np.ndarray, k: int, exact: bool = False) -> list[Hits]:
        """Top-k per query vector, best first: dicts with pin_id, score, title, board
        (exact=True: by brute force over every live vector, see ShardIndex.exact_search)."""
        with self._lock:
            search = self.index.exact_search if exact else self.index.search
            scores, keys = search(queries, k)
            return [
                [
                    {
                        "pin_id": self._pins[key].pin_id,
                        "score": float(score),
                        "title": self._pins[key].title,
                        "board": self._pins[key].board,
                    }
                    for score, key in zip(row_scores.tolist(), row_keys.tolist(), strict=True)
                    if key >= 0
                ]
                for row_scores, row_keys in zip(scores, keys, strict=True)
            ]

    def get(self, pin_id: str) -> dict[str, Any] | None:
        """The indexed pin with its vector, or None when it is not (or no longer) indexed."""
        key = pin_key(pin_id)
        with self._lock:
            info = self._pins.get(key)
            vector = self.index.vector(key)
            if info is None or vector is None:
                return None
            return {
                "pin_id": info.pin_id,
                "title": info.title,
                "board": info.board,
                "version": info.version,
                "vector": vector,
            }

    def save(self, uri: str, log_offsets: dict[int, int] | None = None) -> str:
        """Publish a snapshot of the vectors and pins under uri; return its URI.

        log_offsets: per log partition, the next offset this state does not cover.
        """
        with self._lock:
            image = self.index.image(log_offsets)
            pins = list(self._pins.items())
        table = pa.table(
            [
                pa.array([key for key, _ in pins], pa.int64()),
                pa.array([info.pin_id for _, info in pins], pa.string()),
                pa.array([info.title for _, info in pins], pa.string()),
                pa.array([info.board for _, info in pins], pa.string()),
                pa.array([info.version for _, info in pins], pa.int64()),
            ],
            schema=_PINS_SCHEMA,
        )
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, _PINS_SCHEMA) as writer:
            writer.write_table(table)
        return save_image(uri, image, {PINS_FILE: sink.getvalue().to_pybytes()})

    @classmethod
    def from_snapshot(
        cls, snapshot: Snapshot, spill_dir: str | os.PathLike[str] | None = None
    ) -> Self:
        """Build a state from an opened snapshot written by save()."""
        index = ShardIndex.from_snapshot(snapshot, spill_dir)
        try:
            reader = pa.ipc.open_file(pa.BufferReader(snapshot.read_bytes(PINS_FILE)))
            table = reader.read_all()
            if not table.schema.equals(_PINS_SCHEMA):
                raise ValueError(f"pins schema is {table.schema}")
        except (pa.ArrowInvalid, ValueError) as exc:
            index.close()
            raise CorruptSnapshot(f"{snapshot.uri}: {PINS_FILE} cannot be read: {exc}") from exc
        state = cls(index.config, index)
        rows = zip(*(table.column(name).to_pylist() for name in _PINS_SCHEMA.names), strict=True)
        state._pins = {
            key: PinInfo(pin_id, title, board, version)
            for key, pin_id, title, board, version in rows
        }
        if len(state._pins) != len(index) or any(k not in index for k in state._pins):
            index.close()
            raise CorruptSnapshot(f"{snapshot.uri}: pins and vectors do not match")
        return state

    def live_pins(self) -> dict[str, PinInfo]:
        """Every live pin by pin id (for tests and audits: compare with the oracle fold)."""
        with self._lock:
            return {info.pin_id: info for info in self._pins.values()}


def _vectors(rows: pa.Table, dim: int) -> np.ndarray:
    column = rows.column("vector").combine_chunks()
    if column.null_count:
        raise ValueError("an upsert row carries no vector")
    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values.reshape(len(rows), dim), dtype=np.float32)
