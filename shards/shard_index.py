"""One shard's vector index: last-writer-wins upserts and deletes over an exact growing segment.

The shard keeps the newest version seen for every id (live or deleted) apart from the segments
that hold vectors, so sealed segments can later join the growing one without changing how
versions decide which write wins.
"""

import threading
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

_METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class ShardConfig:
    """How one shard indexes its vectors: dimension and metric ("ip" or "l2")."""

    dim: int
    metric: str = "ip"

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {self.dim!r}")
        if self.metric not in _METRICS:
            raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {self.metric!r}")


class _GrowingSegment:
    """Exact, mutable FAISS segment that new writes go to; ids in it are unique."""

    def __init__(self, config: ShardConfig) -> None:
        flat = faiss.IndexFlat(config.dim, _METRICS[config.metric])
        # IndexIDMap2 (not IndexIDMap) so a stored vector can be read back by id.
        self._index = faiss.IndexIDMap2(flat)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        if ids.size:
            self._index.remove_ids(faiss.IDSelectorBatch(ids))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self._index.search(queries, k)
        return scores, ids

    def reconstruct(self, key: int) -> np.ndarray:
        return np.asarray(self._index.reconstruct(key), dtype=np.float32)


class ShardIndex:
    """A shard's index: versioned upserts and deletes, exact top-k search; thread-safe."""

    def __init__(self, config: ShardConfig) -> None:
        self._config = config
        self._lock = threading.RLock()
        self._segment = _GrowingSegment(config)
        # Newest version seen per id, live or deleted: a delete leaves its version here as a
        # tombstone so an older upsert that arrives later is ignored.
        self._versions: dict[int, int] = {}
        self._live: set[int] = set()
        # Newest version seen for any id; writes without versions are stamped above it.
        self._clock = -1
        self._pad_score = np.float32(-np.inf if config.metric == "ip" else np.inf)

    @property
    def config(self) -> ShardConfig:
        """The config this shard was built with."""
        return self._config

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def upsert(self, ids: Any, vectors: Any, versions: Any = None) -> int:
        """Insert or replace vectors by id; return how many rows were applied.

        A row is ignored when its version is not newer than the newest seen for its id.
        versions=None stamps rows newer than anything seen, so they always apply.
        """
        keys = _check_ids(ids)
        matrix = _check_matrix(vectors, self._config.dim, "vectors")
        if matrix.shape[0] != keys.shape[0]:
            raise ValueError(
                f"ids and vectors must have the same length, got {keys.shape[0]} and "
                f"{matrix.shape[0]}"
            )
        given_versions = _check_versions(versions, keys.shape[0])
        with self._lock:
            stamped = self._stamp(given_versions, keys.shape[0])
            rows = self._accepted_rows(keys, stamped)
            if rows.size == 0:
                return 0
            new_keys = keys[rows]
            replaced = [key for key in new_keys.tolist() if key in self._live]
            self._segment.remove(np.asarray(replaced, dtype=np.int64))
            self._segment.add(new_keys, matrix[rows])
            self._record(new_keys, stamped[rows], live=True)
            return int(rows.size)

    def delete(self, ids: Any, versions: Any = None) -> int:
        """Delete ids, leaving tombstone versions; return how many rows were applied.

        Versions follow the same last-writer-wins rule as upsert; deleting an id that is not
        live still records its tombstone version.
        """
        keys = _check_ids(ids)
        given_versions = _check_versions(versions, keys.shape[0])
        with self._lock:
            stamped = self._stamp(given_versions, keys.shape[0])
            rows = self._accepted_rows(keys, stamped)
            if rows.size == 0:
                return 0
            gone_keys = keys[rows]
            removed = [key for key in gone_keys.tolist() if key in self._live]
            self._segment.remove(np.asarray(removed, dtype=np.int64))
            self._record(gone_keys, stamped[rows], live=False)
            return int(rows.size)

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores float32[m, k], ids int64[m, k]), best first, padded with id -1.

        Scores are inner products ("ip", padding -inf) or squared L2 distances ("l2", +inf).
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        k = int(k)
        matrix = _check_matrix(queries, self._config.dim, "queries")
        scores = np.full((matrix.shape[0], k), self._pad_score, dtype=np.float32)
        ids = np.full((matrix.shape[0], k), -1, dtype=np.int64)
        with self._lock:
            # Asking FAISS for no more than the live count keeps its result heap small.
            k_live = min(k, len(self._segment))
            if k_live == 0 or matrix.shape[0] == 0:
                return scores, ids
            found_scores, found_ids = self._segment.search(matrix, k_live)
        scores[:, :k_live] = found_scores
        ids[:, :k_live] = found_ids
        return scores, ids

    def vector(self, key: int) -> np.ndarray | None:
        """Return a copy of the stored vector of a live id, or None."""
        with self._lock:
            if int(key) not in self._live:
                return None
            return self._segment.reconstruct(int(key))

    def version(self, key: int) -> int | None:
        """Return the newest version seen for an id (live or deleted), or None if never seen."""
        with self._lock:
            return self._versions.get(int(key))

    def _stamp(self, versions: np.ndarray | None, n: int) -> np.ndarray:
        """Return the versions of a call's rows, stamping unversioned rows above all seen."""
        if versions is None:
            versions = np.arange(self._clock + 1, self._clock + 1 + n, dtype=np.int64)
        if versions.size:
            self._clock = max(self._clock, int(versions.max()))
        return versions

    def _accepted_rows(self, keys: np.ndarray, versions: np.ndarray) -> np.ndarray:
        """Return the rows that win: newest per id in the call, and newer than any seen before."""
        if keys.size == 0:
            return np.empty(0, dtype=np.int64)
        # Sort by id, then version, then position: the last row of each id's run wins.
        order = np.lexsort((np.arange(keys.size), versions, keys))
        sorted_keys = keys[order]
        is_last = np.ones(keys.size, dtype=bool)
        is_last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
        winners = order[is_last]
        seen = self._versions
        accepted = [
            row
            for row, key, version in zip(
                winners.tolist(), keys[winners].tolist(), versions[winners].tolist(), strict=True
            )
            if version > seen.get(key, -1)
        ]
        return np.asarray(accepted, dtype=np.int64)

    def _record(self, keys: np.ndarray, versions: np.ndarray, *, live: bool) -> None:
        for key, version in zip(keys.tolist(), versions.tolist(), strict=True):
            self._versions[key] = version
            if live:
                self._live.add(key)
            else:
                self._live.discard(key)


def _check_int_array(values: Any, name: str) -> np.ndarray:
    """Return values as a 1-D int64 array of non-negative ints, or raise ValueError."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got dtype {array.dtype}")
    if array.dtype.kind == "u" and int(array.max()) > _INT64_MAX:
        raise ValueError(f"{name} must fit in int64, got a value above {_INT64_MAX}")
    array = array.astype(np.int64, copy=False)
    if int(array.min()) < 0:
        raise ValueError(f"{name} must be >= 0, got {int(array.min())}")
    return array


def _check_ids(ids: Any) -> np.ndarray:
    # Negative ids are refused: FAISS uses -1 for "no result".
    return _check_int_array(ids, "ids")


def _check_versions(versions: Any, n: int) -> np.ndarray | None:
    if versions is None:
        return None
    array = _check_int_array(versions, "versions")
    if array.shape[0] != n:
        raise ValueError(f"ids and versions must have the same length, got {n} and {len(array)}")
    return array


def _check_matrix(values: Any, dim: int, name: str) -> np.ndarray:
    """Return values as a C-contiguous float32 [n, dim] array of finite numbers."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, {dim}], got shape {array.shape}")
    if array.shape[1] != dim:
        raise ValueError(f"{name} must have dimension {dim}, got {array.shape[1]}")
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be real numbers, got dtype {array.dtype}")
    with np.errstate(over="ignore"):  # values too large for float32 are refused just below
        array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (no NaN or inf, also after casting to float32)")
    return array
