"""Raw float32 vectors of lossy sealed segments, memory-mapped from local disk.

A PQ or SQ segment cannot give its vectors back exactly, yet compaction retrains on them,
reranking rescores with them and `ShardIndex.vector` returns them. They live in .npy files
under a spill directory, read through the page cache, so they cost disk, not resident memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np


class SpillDir:
    """A local directory for raw-vector files; a private temporary one when none is given."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._given = None if path is None else Path(path)
        self._path: Path | None = None
        self._lock = threading.Lock()

    def new_file(self) -> Path:
        """Return the path of a new, empty file in the directory (created on first use)."""
        with self._lock:
            if self._path is None:
                self._path = self._create()
        handle, name = tempfile.mkstemp(prefix="segment-", suffix=".npy", dir=self._path)
        os.close(handle)
        return Path(name)

    def _create(self) -> Path:
        if self._given is not None:
            self._given.mkdir(parents=True, exist_ok=True)
            return self._given
        path = Path(tempfile.mkdtemp(prefix="pinstream-shard-"))
        weakref.finalize(self, shutil.rmtree, path, ignore_errors=True)
        return path


class RawVectors:
    """Read-only float32 [n, d] vectors in one spill file, removed when this object is."""

    def __init__(self, path: Path, spill: SpillDir) -> None:
        self.path = path
        # The spill dir must outlive its files: a temporary one is removed with its SpillDir.
        self._spill = spill
        weakref.finalize(self, _remove, path)
        self.array: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)

    @classmethod
    def write(cls, spill: SpillDir, vectors: np.ndarray) -> RawVectors:
        """Copy vectors into a new spill file and map it."""
        path = spill.new_file()
        try:
            np.save(path, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        except BaseException:
            _remove(path)
            raise
        return cls(path, spill)

    @classmethod
    def fill(cls, spill: SpillDir, copy_into: Callable[[Path], None]) -> RawVectors:
        """Let copy_into write a .npy file at a new spill path, then map it."""
        path = spill.new_file()
        try:
            copy_into(path)
            return cls(path, spill)
        except BaseException:
            _remove(path)
            raise

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Return the vectors at positions as a new float32 array."""
        return np.asarray(self.array[positions], dtype=np.float32)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
