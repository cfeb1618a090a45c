"""A shard's whole state: its vectors (ShardIndex) plus what the API returns about each pin.

Built only by applying embeddings-log rows, so any replica that applies the same
log reaches the same state, whatever the replays and duplicates.

What the API returns about a pin (pin id, title, board) is the index's payload: Arrow rows
aligned with segment positions, memory-mapped for sealed segments, read by position only for
the final top-k. Boards are dictionary-encoded into the index's tags, so a board filter is a
tag selection inside the index, never a deeper search.

Collision-safe ids: a pin's index id is its hashed key (streams.routing.pin_keys, low
`key_bits` bits), and every id row records the owner fingerprint of the pin that holds it
(pin_owners, an independent 64-bit digest). A pin whose key is held by another owner, live
or as a tombstone, is displaced: it gets an id of its own from DISPLACED_BASE upward, kept in
a small map (pin id -> id) that snapshots carry. Collisions are rare at 63 bits, so the map
stays small; its entries go with their tombstones when those are pruned.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pyarrow as pa

from conf.config import ShardsConfig
from shards.exceptions import CorruptSnapshot
from shards.search_device import SearchDevice
from shards.shard_image import save_image
from shards.shard_index import ShardIndex, Where
from shards.snapshot import LoadsSnapshots, Snapshot
from shards.spill import ipc_bytes
from streams.routing import pin_keys, pin_owners

BOARDS_FILE = "boards.arrow"
DISPLACED_FILE = "displaced.arrow"
DISPLACED_BASE = 1 << 62
PIN_PAYLOAD = pa.schema([("pin_id", pa.string()), ("title", pa.string()), ("board", pa.string())])
_BOARDS_SCHEMA = pa.schema([("board", pa.string())])
_DISPLACED_SCHEMA = pa.schema([("pin_id", pa.string()), ("id", pa.int64())])


# One query's hits, best first: dicts with pin_id, score, title and board. The one hits type
# of pinstream: shards return a list of them per query, the ingress merges them.
Hits = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
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
        self.index = ShardIndex(config, payload_schema=PIN_PAYLOAD) if index is None else index
        if not PIN_PAYLOAD.equals(self.index.payload_schema):
            raise ValueError(f"a shard state's index must keep {PIN_PAYLOAD} payloads")
        self._boards: dict[str, int] = {}
        self._displaced: dict[str, int] = {}
        self._next_displaced = DISPLACED_BASE
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.index)

    def apply_rows(self, rows: pa.Table) -> None:
        """Apply embeddings-log rows; replays and out-of-order duplicates change nothing."""
        if rows.num_rows == 0:
            return
        upserts = np.asarray(rows.column("op").to_numpy(zero_copy_only=False) == "upsert")
        pin_ids = rows.column("pin_id").to_pylist()
        versions = rows.column("version").to_numpy()
        owners = pin_owners(pin_ids)
        with self._lock:
            ids = self._ids_of(pin_ids, owners)
            if upserts.any():
                written = rows.filter(pa.array(upserts))
                payload = pa.table(
                    [
                        written.column("pin_id"),
                        _or_empty(written.column("title")),
                        _or_empty(written.column("board")),
                    ],
                    schema=PIN_PAYLOAD,
                )
                self.index.upsert(
                    ids[upserts],
                    _vectors(written, self.config.dim),
                    versions[upserts],
                    owners=owners[upserts],
                    tags=self._board_codes(payload.column("board").to_pylist()),
                    payload=payload,
                )
            if (~upserts).any():
                self.index.delete(ids[~upserts], versions[~upserts], owners=owners[~upserts])

    def search(
        self,
        queries: np.ndarray,
        k: int,
        boards: Iterable[str] | None = None,
        exclude_pin_ids: Iterable[str] = (),
        exact: bool = False,
    ) -> list[Hits]:
        """Top-k per query vector, best first, among pins of `boards` (None = any) and not in
        exclude_pin_ids: dicts with pin_id, score, title, board. exact=True: by brute force
        over every live vector (ShardIndex.exact_search), without blocking writes."""
        with self._lock:
            where = self._where(boards, exclude_pin_ids)
            if not exact:
                return self._hits(*self.index.search(queries, k, where))
        scores, ids = self.index.exact_search(queries, k, where)
        with self._lock:
            return self._hits(scores, ids)

    def get(self, pin_id: str) -> dict[str, Any] | None:
        """The indexed pin with its vector, or None when it is not (or no longer) indexed."""
        with self._lock:
            ids = self._held_ids([pin_id])
            if not ids.size or ids[0] not in self.index:
                return None
            key = int(ids[0])
            row = self.index.payload(ids)[1].to_pylist()[0]
            return {**row, "version": self.index.version(key), "vector": self.index.vector(key)}

    def save(self, uri: str, log_offsets: dict[int, int] | None = None) -> str:
        """Publish a snapshot of the vectors and pins under uri; return its URI.

        log_offsets: per log partition, the next offset this state does not cover.
        """
        with self._lock:
            self.index.prune_tombstones()
            image = self.index.image(log_offsets)
            self._forget_pruned()
            extra = {
                BOARDS_FILE: ipc_bytes(pa.table([list(self._boards)], schema=_BOARDS_SCHEMA)),
                DISPLACED_FILE: ipc_bytes(
                    pa.table(
                        [list(self._displaced), list(self._displaced.values())],
                        schema=_DISPLACED_SCHEMA,
                    )
                ),
            }
        return save_image(uri, image, extra)

    @classmethod
    def from_snapshot(
        cls,
        snapshot: Snapshot,
        spill_dir: str | os.PathLike[str] | None = None,
        share_with: ShardState | None = None,
        device: SearchDevice | None = None,
    ) -> Self:
        """Build a state from an opened snapshot written by save(); share_with: a state whose
        sealed segments (and search device) are reused where the snapshot holds the same
        ones; device: where to search (ShardIndex.from_snapshot)."""
        index = ShardIndex.from_snapshot(
            snapshot, spill_dir, None if share_with is None else share_with.index, device
        )
        try:
            if not PIN_PAYLOAD.equals(index.payload_schema):
                raise ValueError(f"payload schema is {index.payload_schema}")
            boards = _read(snapshot, BOARDS_FILE, _BOARDS_SCHEMA)
            displaced = _read(snapshot, DISPLACED_FILE, _DISPLACED_SCHEMA)
        except (pa.ArrowInvalid, ValueError) as exc:
            index.close()
            raise CorruptSnapshot(f"{snapshot.uri}: pins cannot be read: {exc}") from exc
        state = cls(index.config, index)
        names = boards.column("board").to_pylist()
        state._boards = {name: code for code, name in enumerate(names)}
        state._displaced = dict(
            zip(
                displaced.column("pin_id").to_pylist(),
                displaced.column("id").to_pylist(),
                strict=True,
            )
        )
        state._next_displaced = max(state._displaced.values(), default=DISPLACED_BASE - 1) + 1
        return state

    def live_pins(self) -> dict[str, PinInfo]:
        """Every live pin by pin id (for tests and audits: compare with the oracle fold)."""
        with self._lock:
            rows = self.index.live_payload().to_pylist()
            ids = self._held_ids([row["pin_id"] for row in rows])
            return {
                row["pin_id"]: PinInfo(
                    row["pin_id"], row["title"], row["board"], self.index.version(int(key)) or 0
                )
                for row, key in zip(rows, ids.tolist(), strict=True)
            }

    def _hits(self, scores: np.ndarray, ids: np.ndarray) -> list[Hits]:
        """Hit dicts for search results; ids no longer live (exact search raced a write) are
        left out."""
        found, rows = self.index.payload(ids[ids >= 0])
        pins = iter(rows.to_pylist())
        hits: list[Hits] = []
        flat = iter(found.tolist())
        for row_scores, row_ids in zip(scores.tolist(), ids.tolist(), strict=True):
            row: Hits = []
            for score, key in zip(row_scores, row_ids, strict=True):
                if key >= 0 and next(flat):
                    row.append({**next(pins), "score": float(score)})
            hits.append(row)
        return hits

    def _where(self, boards: Iterable[str] | None, exclude: Iterable[str]) -> Where | None:
        excluded = list(exclude)
        if boards is None and not excluded:
            return None
        tags = None if boards is None else [self._boards[b] for b in boards if b in self._boards]
        return Where.of(tags, self._held_ids(excluded).tolist())

    def _held_ids(self, pin_ids: Sequence[str]) -> np.ndarray:
        """The ids that pin_ids hold now (live or tombstone); pins without one are left out."""
        if not pin_ids:
            return np.empty(0, dtype=np.int64)
        ids = self._candidate_ids(pin_ids)
        known, owners = self.index.owners(ids)
        return ids[known & (owners == pin_owners(pin_ids))]

    def _candidate_ids(self, pin_ids: Sequence[str]) -> np.ndarray:
        ids = pin_keys(pin_ids, self.config.key_bits)
        if self._displaced:
            for row, pin_id in enumerate(pin_ids):
                if pin_id in self._displaced:
                    ids[row] = self._displaced[pin_id]
        return ids

    def _ids_of(self, pin_ids: list[str], owners: np.ndarray) -> np.ndarray:
        """The index id of each pin, displacing a pin whose key another pin holds."""
        ids = self._candidate_ids(pin_ids)
        known, holders = self.index.owners(ids)
        clash = known & (holders != owners)
        order = np.lexsort((owners, ids))
        twins = (ids[order][1:] == ids[order][:-1]) & (owners[order][1:] != owners[order][:-1])
        if not clash.any() and not twins.any():
            return ids
        # Rare: some key is taken by another pin, maybe by one earlier in this very batch.
        claimed: dict[int, int] = {}
        for row, pin_id in enumerate(pin_ids):
            if pin_id in self._displaced:  # maybe displaced by an earlier row of this batch
                ids[row] = self._displaced[pin_id]
                continue
            key, owner = int(ids[row]), int(owners[row])
            holder = claimed.get(key, int(holders[row]) if known[row] else None)
            if holder is None or holder == owner:
                claimed[key] = owner
                continue
            ids[row] = self._displace(pin_id, claimed)
            claimed[int(ids[row])] = owner
        return ids

    def _displace(self, pin_id: str, claimed: dict[int, int]) -> int:
        """A fresh id for pin_id, held by no one, recorded in the displaced map."""
        while True:
            candidate = self._next_displaced
            self._next_displaced += 1
            known, _ = self.index.owners(np.array([candidate], dtype=np.int64))
            if not known[0] and candidate not in claimed:
                self._displaced[pin_id] = candidate
                return candidate

    def _forget_pruned(self) -> None:
        """Drop displaced entries whose id row (a tombstone) was pruned."""
        if self._displaced:
            ids = np.fromiter(self._displaced.values(), dtype=np.int64, count=len(self._displaced))
            known, _ = self.index.owners(ids)
            self._displaced = {
                pin_id: key
                for (pin_id, key), keep in zip(self._displaced.items(), known, strict=True)
                if keep
            }

    def _board_codes(self, boards: list[str]) -> np.ndarray:
        codes = self._boards
        return np.fromiter(
            (codes.setdefault(board, len(codes)) for board in boards), np.int32, len(boards)
        )


def _or_empty(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.fill_null("").cast(pa.string())


def _vectors(rows: pa.Table, dim: int) -> np.ndarray:
    column = rows.column("vector").combine_chunks()
    if column.null_count:
        raise ValueError("an upsert row carries no vector")
    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values.reshape(len(rows), dim), dtype=np.float32)


def _read(snapshot: Snapshot, name: str, schema: pa.Schema) -> pa.Table:
    table = pa.ipc.open_file(pa.BufferReader(snapshot.read_bytes(name))).read_all()
    if not table.schema.equals(schema):
        raise ValueError(f"{name} schema is {table.schema}")
    return table
