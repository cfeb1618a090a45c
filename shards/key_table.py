"""Per-id bookkeeping of a shard in numpy columns: no Python object per id.

Every id the shard has seen, live or deleted, has one row: its newest version, the owner
fingerprint of the pin that holds the id (shard_state.py: how two pins never share one), and
where its vector lives, as (segment slot, position); a deleted id (a tombstone) has slot
TOMBSTONE and keeps, in its position column, how many snapshots have held it so far.

Rows are kept sorted by id in two runs, a large base and a small delta that new ids go to,
so a batch of n lookups or updates costs O(n log N) and an insert moves O(delta) bytes, not
O(N). The delta is merged into the base once it outgrows DELTA_FACTOR * sqrt(N) rows (an
O(N) merge, amortised over that many inserts). 32 bytes per id in all.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

TOMBSTONE = -1
MISSING = -1  # a handle that points nowhere
DELTA_FACTOR = 32
MIN_DELTA = 4096
COLUMNS: dict[str, type[np.generic]] = {
    "ids": np.int64,
    "versions": np.int64,
    "owners": np.int64,
    "slots": np.int32,
    "positions": np.int32,
}


def _empty() -> dict[str, np.ndarray]:
    return {name: np.empty(0, dtype=dtype) for name, dtype in COLUMNS.items()}


class KeyTable:
    """Rows by unique int64 id: version, owner, slot and position. Not thread-safe."""

    def __init__(self) -> None:
        self._base = _empty()
        self._delta = _empty()

    @classmethod
    def of_sorted(cls, columns: dict[str, np.ndarray]) -> KeyTable:
        """A table over these columns as they are (ids sorted and unique: not checked)."""
        table = cls()
        table._base = {name: np.asarray(columns[name], dtype=d) for name, d in COLUMNS.items()}
        return table

    def __len__(self) -> int:
        return int(self._base["ids"].size + self._delta["ids"].size)

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns."""
        return sum(column.nbytes for run in (self._base, self._delta) for column in run.values())

    def handles(self, ids: np.ndarray) -> np.ndarray:
        """For each id, its row handle (>= 0 in the base, <= -2 in the delta) or MISSING."""
        out = np.full(ids.shape, MISSING, dtype=np.int64)
        for run, encode in ((self._base, _base_handle), (self._delta, _delta_handle)):
            keys = run["ids"]
            if keys.size == 0 or ids.size == 0:
                continue
            rows = np.minimum(np.searchsorted(keys, ids), keys.size - 1)
            found = keys[rows] == ids
            out[found] = encode(rows[found])
        return out

    def get(self, name: str, handles: np.ndarray, missing: int) -> np.ndarray:
        """Column `name` at handles; `missing` where a handle is MISSING."""
        out = np.full(handles.shape, missing, dtype=COLUMNS[name])
        in_base = handles >= 0
        in_delta = handles <= -2
        out[in_base] = self._base[name][handles[in_base]]
        out[in_delta] = self._delta[name][-2 - handles[in_delta]]
        return out

    def lookup(self, name: str, ids: np.ndarray, missing: int) -> np.ndarray:
        """Column `name` for ids; `missing` for ids without a row."""
        return self.get(name, self.handles(ids), missing)

    def put(self, ids: np.ndarray, **values: np.ndarray | int) -> None:
        """Set every column for ids (unique in the call), adding rows for ids not held."""
        if set(values) != set(COLUMNS) - {"ids"}:
            raise ValueError(f"put needs every column, got {sorted(values)}")
        handles = self.handles(ids)
        held = handles != MISSING
        self._assign(handles[held], {name: _at(value, held) for name, value in values.items()})
        fresh = ~held
        if fresh.any():
            columns = {"ids": ids[fresh], **{n: _at(v, fresh) for n, v in values.items()}}
            self._insert(columns)

    def assign(self, handles: np.ndarray, **values: np.ndarray | int) -> None:
        """Set some columns at handles that exist."""
        if (handles == MISSING).any():
            raise KeyError("assign to an id without a row")
        self._assign(handles, dict(values))

    def prune(self, drop: Callable[[dict[str, np.ndarray]], np.ndarray]) -> int:
        """Remove the rows for which drop(columns) is True; return how many."""
        removed = 0
        for run in (self._base, self._delta):
            mask = drop(run)
            if mask.any():
                removed += int(mask.sum())
                for name in COLUMNS:
                    run[name] = run[name][~mask]
        return removed

    def increment(self, name: str, where: Callable[[dict[str, np.ndarray]], np.ndarray]) -> None:
        """Add 1 to column `name` in the rows for which where(columns) is True."""
        for run in (self._base, self._delta):
            run[name][where(run)] += 1

    def columns(self) -> dict[str, np.ndarray]:
        """Copies of every row's columns, sorted by id."""
        self._merge()
        return {name: column.copy() for name, column in self._base.items()}

    def count(self, where: Callable[[dict[str, np.ndarray]], np.ndarray]) -> int:
        """Rows for which where(columns) is True."""
        return sum(int(where(run).sum()) for run in (self._base, self._delta))

    def _assign(self, handles: np.ndarray, values: dict[str, np.ndarray | int]) -> None:
        in_base = handles >= 0
        in_delta = handles <= -2
        for name, value in values.items():
            self._base[name][handles[in_base]] = _at(value, in_base)
            self._delta[name][-2 - handles[in_delta]] = _at(value, in_delta)

    def _insert(self, columns: dict[str, np.ndarray | int]) -> None:
        ids = np.asarray(columns["ids"], dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        rows = {
            name: np.broadcast_to(np.asarray(columns[name], dtype=dtype), ids.shape)[order]
            for name, dtype in COLUMNS.items()
        }
        self._delta = _merged(self._delta, rows)
        if self._delta["ids"].size > max(MIN_DELTA, DELTA_FACTOR * math.isqrt(len(self))):
            self._merge()

    def _merge(self) -> None:
        if self._delta["ids"].size:
            self._base = _merged(self._base, self._delta)
            self._delta = _empty()


def _merged(run: dict[str, np.ndarray], rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """run with sorted rows (ids not in run) inserted in order: O(len(run) + len(rows))."""
    at = np.searchsorted(run["ids"], rows["ids"])
    return {name: np.insert(run[name], at, rows[name]) for name in COLUMNS}


def _at(value: np.ndarray | int, mask: np.ndarray) -> np.ndarray | int:
    return value[mask] if isinstance(value, np.ndarray) else value


def _base_handle(rows: np.ndarray) -> np.ndarray:
    return rows


def _delta_handle(rows: np.ndarray) -> np.ndarray:
    return -2 - rows
