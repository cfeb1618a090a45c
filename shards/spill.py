"""A shard's local spill directory: the files its sealed segments keep out of resident memory.

A sealed segment writes its FAISS index, its pins' payload (Arrow IPC) and, for lossy indexes
(PQ, SQ), its raw float32 vectors (.npy) into the spill directory and maps them back: they cost
disk and page cache, not anonymous memory, and a snapshot streams them from there. A file is
removed when the last object that maps it is gone, so two states that share a segment (a
replica swapping in a newer snapshot) share its files too.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa

# FAISS maps IndexFlatCodes storage (Flat, IVF-Flat lists, HNSW storage) from the file.
_MAP_INDEX = faiss.IO_FLAG_MMAP_IFC
_CHUNK = 4 << 20


class SpillDir:
    """A local directory for spill files; a private temporary one when none is given."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._given = None if path is None else Path(path)
        self._path: Path | None = None
        self._lock = threading.Lock()

    def new_file(self, suffix: str) -> SpillFile:
        """A new, empty file in the directory (created on first use), removed with its object."""
        with self._lock:
            if self._path is None:
                self._path = self._create()
        handle, name = tempfile.mkstemp(prefix="segment-", suffix=suffix, dir=self._path)
        os.close(handle)
        return SpillFile(Path(name), self)

    def fill(self, suffix: str, copy_into: Callable[[Path], None]) -> SpillFile:
        """A new file that copy_into(path) writes; removed again if copy_into fails."""
        file = self.new_file(suffix)
        try:
            copy_into(file.path)
        except BaseException:
            file.remove()
            raise
        return file

    def _create(self) -> Path:
        if self._given is not None:
            self._given.mkdir(parents=True, exist_ok=True)
            return self._given
        path = Path(tempfile.mkdtemp(prefix="pinstream-shard-"))
        weakref.finalize(self, shutil.rmtree, path, ignore_errors=True)
        return path


class SpillFile:
    """One file of a spill directory, deleted when this object is."""

    def __init__(self, path: Path, spill: SpillDir) -> None:
        self.path = path
        self._spill = spill  # the directory must outlive its files: a temporary one goes with it
        self._finalizer = weakref.finalize(self, _remove, path)

    def remove(self) -> None:
        """Delete the file now."""
        self._finalizer()

    def sha256(self) -> str:
        """The hex sha256 of the file's bytes (what a snapshot manifest lists)."""
        digest = hashlib.sha256()
        with open(self.path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()


class RawVectors:
    """Read-only float32 [n, d] vectors in one spill file."""

    def __init__(self, file: SpillFile) -> None:
        self.file = file
        self.array: np.ndarray = np.load(file.path, mmap_mode="r", allow_pickle=False)

    @classmethod
    def write(cls, spill: SpillDir, vectors: np.ndarray) -> RawVectors:
        """Copy vectors into a new spill file and map it."""
        array = np.ascontiguousarray(vectors, dtype=np.float32)
        return cls(spill.fill(".npy", lambda path: np.save(path, array, allow_pickle=False)))

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Return the vectors at positions as a new float32 array."""
        return np.asarray(self.array[positions], dtype=np.float32)


def write_index(spill: SpillDir, index: faiss.Index) -> tuple[faiss.Index, SpillFile]:
    """Write index to a spill file and map it back; return the mapped index and its file."""
    file = spill.fill(".faiss", lambda path: faiss.write_index(index, str(path)))
    return map_index(file), file


def map_index(file: SpillFile) -> faiss.Index:
    """The FAISS index in file, its codes mapped from the file (RuntimeError if unreadable)."""
    return faiss.read_index(str(file.path), _MAP_INDEX)


def write_payload(spill: SpillDir, table: pa.Table) -> tuple[pa.Table, SpillFile]:
    """Write table as an Arrow IPC file and map it back; return the mapped table and file."""

    def write(path: Path) -> None:
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    file = spill.fill(".arrow", write)
    return map_payload(file), file


def map_payload(file: SpillFile) -> pa.Table:
    """The Arrow table in file, memory-mapped (pa.ArrowInvalid if it is not an IPC file)."""
    return pa.ipc.open_file(pa.memory_map(str(file.path))).read_all()


def segment_digest(index_sha256: str, ids_sha256: str) -> str:
    """What identifies a sealed segment's content: the sha256 of its index file and ids .npy."""
    return hashlib.sha256(f"{index_sha256}:{ids_sha256}".encode()).hexdigest()


def npy_bytes(array: np.ndarray) -> bytes:
    """array as the bytes of a .npy file (how snapshots store arrays)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def ipc_bytes(table: pa.Table) -> bytes:
    """table as the bytes of an Arrow IPC file."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def npy_sha256(array: np.ndarray) -> str:
    """The sha256 of npy_bytes(array)."""
    return hashlib.sha256(npy_bytes(array)).hexdigest()


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
