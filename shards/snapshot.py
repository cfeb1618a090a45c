"""Snapshot directories published atomically through pyarrow.fs (a local path, s3://, gs://).

Layout under a root URI:

    root/snapshot-000041/...             an older snapshot
    root/snapshot-000042/<files>         written first
    root/snapshot-000042/manifest.json   written last: size and sha256 of every file, metadata,
                                         and a sha256 of the manifest body itself
    root/CURRENT                         "snapshot-000042", replaced last via temp file + move

Why a reader never uses a half-written snapshot: a snapshot is trusted only when its manifest
exists, matches its own checksum, and every file it lists has the listed size and sha256. The
manifest is written after every file, so a writer that dies at any point leaves either no
manifest (refused as partial) or a complete snapshot. On object stores (S3, GCS) one PUT is
visible whole or not at all and moving CURRENT copies one small object, so readers see the old
pointer or the new one; on a local disk the move is rename(2), atomic as well. A reader whose
CURRENT target fails to verify falls back to the newest snapshot that does (first_good).
Files hold arrays as .npy (read with allow_pickle=False), FAISS indexes as serialize_index
bytes, JSON and Arrow IPC: nothing is unpickled. One writer per root at a time.

write_directory and open_directory are those steps on their own, for other artifacts published
the same way (the model registry, encoder/registry.py). Locations are opened, and CURRENT is
replaced, by conf/storage.py, which the registry and the traffic policy use too.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from conf.errors import StorageError
from conf.storage import replace_file, resolve_uri
from shards.exceptions import CorruptSnapshot, SnapshotError, SnapshotNotFound
from streams.events import now_ms

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CURRENT = "CURRENT"
FORMAT = 1
_SNAPSHOT_NAME = re.compile(r"snapshot-(\d{6,})")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CHUNK = 4 << 20
_NPY_HEADER_MAX = 1 << 16  # .npy headers are shorter (format versions 1 and 2)
T = TypeVar("T")


class Snapshot:
    """A snapshot whose manifest verified; every read checks the file against the manifest."""

    def __init__(self, fs: pafs.FileSystem, path: str, uri: str, body: dict[str, Any]) -> None:
        self.uri = uri
        self.meta = body
        self._fs = fs
        self._path = path
        self._files: dict[str, Any] = body["files"]

    def sha256(self, name: str) -> str:
        """The sha256 the manifest lists for a file (what it is checked against)."""
        entry = self._files.get(name)
        if entry is None:
            raise CorruptSnapshot(f"{self.uri}: the manifest lists no file {name!r}")
        return str(entry["sha256"])

    def read_bytes(self, name: str) -> bytes:
        """The verified content of one listed file."""
        return bytes(self._read_buffer(name))

    def read_array(self, name: str) -> np.ndarray:
        """A verified .npy file as an array over the bytes read, not a copy of them (object
        arrays refused: no pickle)."""
        try:
            return _npy_array(self._read_buffer(name))
        except (ValueError, OSError, EOFError) as exc:
            raise CorruptSnapshot(f"{self.uri}: {name} is not a valid .npy array: {exc}") from exc

    def _read_buffer(self, name: str) -> bytearray:
        """The file's verified bytes in one buffer of the listed size, filled in place."""
        entry = self._files.get(name)
        data = bytearray(entry["bytes"] if entry else 0)
        view, filled = memoryview(data), 0

        def sink(chunk: bytes) -> None:
            nonlocal filled
            if filled + len(chunk) <= len(data):  # a longer file fails its check just after
                view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)

        self._stream(name, sink)
        return data

    def copy_to(self, name: str, destination: Path) -> None:
        """Stream one listed file to a local path, verifying it on the way."""
        with open(destination, "wb") as out:
            self._stream(name, out.write)

    def _stream(self, name: str, sink: Callable[[bytes], object]) -> None:
        entry = self._files.get(name)
        if entry is None:
            raise CorruptSnapshot(f"{self.uri}: the manifest lists no file {name!r}")
        digest, size = hashlib.sha256(), 0
        try:
            with self._fs.open_input_stream(f"{self._path}/{name}") as stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    sink(chunk)
        except FileNotFoundError as exc:
            raise CorruptSnapshot(f"{self.uri}: file {name} is missing") from exc
        except (OSError, pa.ArrowException) as exc:
            raise CorruptSnapshot(f"{self.uri}: file {name} cannot be read: {exc}") from exc
        if size != entry["bytes"] or digest.hexdigest() != entry["sha256"]:
            raise CorruptSnapshot(
                f"{self.uri}: file {name} fails its checksum ({size} bytes, manifest says "
                f"{entry['bytes']}): truncated or damaged"
            )


def _npy_array(data: bytearray) -> np.ndarray:
    """The array a .npy file's bytes hold, as a view of them."""
    header = io.BytesIO(bytes(data[:_NPY_HEADER_MAX]))
    version = np.lib.format.read_magic(header)
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in readers:
        raise ValueError(f".npy format version {version} is not supported")
    shape, fortran_order, dtype = readers[version](header)
    if dtype.hasobject:
        raise ValueError("object arrays cannot be read without pickle")
    count = int(np.prod(shape, dtype=np.int64))
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header.tell())
    return array.reshape(shape, order="F" if fortran_order else "C")


class LoadsSnapshots:
    """`load` and `load_latest` for a class that builds itself from an opened Snapshot."""

    @classmethod
    def from_snapshot(
        cls, snapshot: Snapshot, spill_dir: str | os.PathLike[str] | None = None
    ) -> Self:
        raise NotImplementedError

    @classmethod
    def load(cls, uri: str, spill_dir: str | os.PathLike[str] | None = None) -> Self:
        """Load the snapshot at uri (a snapshot, or a root's CURRENT one); verify every file.

        Raises CorruptSnapshot for a partial or damaged snapshot, SnapshotNotFound if none.
        """
        return cls.from_snapshot(open_snapshot(uri), spill_dir)

    @classmethod
    def load_latest(cls, uri: str, spill_dir: str | os.PathLike[str] | None = None) -> Self:
        """Load the newest good snapshot under root uri, skipping corrupt or partial ones."""
        return first_good(uri, lambda snapshot: cls.from_snapshot(snapshot, spill_dir))


def publish_snapshot(root: str, files: Mapping[str, bytes | Path], meta: Mapping[str, Any]) -> str:
    """Write files and their manifest into a new snapshot under root, then point CURRENT at it.

    A Path value is streamed from that local file. Returns the new snapshot's URI.
    """
    fs, root_path = _resolve(root)
    try:
        fs.create_dir(root_path, recursive=True)
        matches = map(_SNAPSHOT_NAME.fullmatch, _children(fs, root_path))
        numbers = [int(match[1]) for match in matches if match]
        name = f"snapshot-{max(numbers, default=0) + 1:06d}"
        write_directory(fs, f"{root_path}/{name}", files, meta, _child(root, name))
        replace_file(fs, f"{root_path}/{CURRENT}", f"{name}\n".encode())
    except (OSError, pa.ArrowException) as exc:
        raise SnapshotError(f"cannot write a snapshot under {root}: {exc}") from exc
    log.info("published snapshot %s", _child(root, name))
    return _child(root, name)


def write_directory(
    fs: pafs.FileSystem,
    directory: str,
    files: Mapping[str, bytes | Path],
    meta: Mapping[str, Any],
    uri: str,
) -> dict[str, Any]:
    """Create `directory`, write files into it, then the manifest that lists them (last).

    Refuses a directory that exists. Returns the manifest body. Storage errors propagate
    (OSError, ArrowException) for the caller to wrap.
    """
    if fs.get_file_info(directory).type != pafs.FileType.NotFound:
        raise SnapshotError(f"{uri} already exists: is another writer running?")
    fs.create_dir(directory, recursive=True)
    entries = {}
    for file_name, source in files.items():
        if not _FILE_NAME.fullmatch(file_name) or file_name == MANIFEST:
            raise ValueError(f"bad snapshot file name {file_name!r}")
        entries[file_name] = _write(fs, f"{directory}/{file_name}", source)
    body = {**meta, "format": FORMAT, "created_ms": now_ms(), "files": entries}
    manifest = {"sha256": _body_digest(body), "body": body}
    _write(fs, f"{directory}/{MANIFEST}", json.dumps(manifest, indent=1).encode())
    return body


def open_snapshot(uri: str) -> Snapshot:
    """Open the snapshot at uri (a snapshot directory, or a root: its CURRENT snapshot)."""
    fs, path = _resolve(uri)
    current = _read_current(fs, path, uri)
    if current is not None:
        return open_directory(fs, f"{path}/{current}", _child(uri, current))
    return open_directory(fs, path, uri)


def list_snapshots(root: str) -> list[str]:
    """URIs of the snapshot directories under root: CURRENT's first, then newest first."""
    fs, path = _resolve(root)
    names = sorted(
        (name for name in _children(fs, path) if _SNAPSHOT_NAME.fullmatch(name)),
        key=lambda name: int(name.split("-")[1]),
        reverse=True,
    )
    try:
        current = _read_current(fs, path, root)
    except CorruptSnapshot as exc:
        log.warning("%s", exc)
        current = None
    if current in names:
        names = [current, *(name for name in names if name != current)]
    return [_child(root, name) for name in names]


def first_good(root: str, load: Callable[[Snapshot], T]) -> T:
    """load() the first snapshot of list_snapshots(root) that opens and loads without damage."""
    refused = []
    for uri in list_snapshots(root):
        try:
            return load(open_snapshot(uri))
        except (CorruptSnapshot, SnapshotNotFound) as exc:  # not found: pruned meanwhile
            log.warning("snapshot refused, trying an older one: %s", exc)
            refused.append(str(exc))
    detail = f"; refused: {' | '.join(refused)}" if refused else ""
    raise SnapshotNotFound(f"no good snapshot under {root}{detail}")


def prune_snapshots(root: str, keep: int = 3) -> list[str]:
    """Delete snapshots older than CURRENT beyond the newest `keep` (CURRENT included).

    Snapshots newer than CURRENT are left alone: a writer may still be filling them.
    Returns the URIs deleted.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    fs, path = _resolve(root)
    current = _read_current(fs, path, root)
    if current is None:
        return []
    newest = int(current.split("-")[1])
    older = sorted(
        (
            name
            for name in _children(fs, path)
            if (match := _SNAPSHOT_NAME.fullmatch(name)) and int(match[1]) < newest
        ),
        reverse=True,
    )
    deleted = []
    for name in older[keep - 1 :]:
        fs.delete_dir(f"{path}/{name}")
        deleted.append(_child(root, name))
    return deleted


def open_directory(fs: pafs.FileSystem, path: str, uri: str) -> Snapshot:
    """The directory at `path` (named `uri` in errors) once its manifest verified."""
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise SnapshotNotFound(f"no snapshot at {uri}")
    try:
        with fs.open_input_stream(f"{path}/{MANIFEST}") as stream:
            raw = stream.read()
    except FileNotFoundError as exc:
        if _SNAPSHOT_NAME.fullmatch(path.rsplit("/", 1)[-1]):
            raise CorruptSnapshot(f"{uri} has no {MANIFEST}: a partial snapshot") from exc
        raise SnapshotNotFound(f"no {CURRENT} pointer or {MANIFEST} at {uri}") from exc
    try:
        manifest = json.loads(raw)
        body = manifest["body"]
        digest = manifest["sha256"]
        files = body["files"]
        valid = (
            isinstance(files, dict)
            and all(
                isinstance(e, dict) and isinstance(e.get("bytes"), int) and "sha256" in e
                for e in files.values()
            )
            and body.get("format") == FORMAT
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptSnapshot(f"{uri}: {MANIFEST} is not a valid manifest: {exc}") from exc
    if digest != _body_digest(body):
        raise CorruptSnapshot(f"{uri}: {MANIFEST} fails its own checksum: damaged")
    if not valid:
        raise CorruptSnapshot(f"{uri}: {MANIFEST} has an unknown format or bad file list")
    return Snapshot(fs, path, uri, body)


def _read_current(fs: pafs.FileSystem, path: str, uri: str) -> str | None:
    try:
        with fs.open_input_stream(f"{path}/{CURRENT}") as stream:
            name = stream.read().decode(errors="replace").strip()
    except FileNotFoundError:
        return None
    if not _SNAPSHOT_NAME.fullmatch(name):
        raise CorruptSnapshot(f"{uri}/{CURRENT} does not name a snapshot: {name[:80]!r}")
    return name


def _write(fs: pafs.FileSystem, path: str, source: bytes | Path) -> dict[str, Any]:
    digest, size = hashlib.sha256(), 0
    with fs.open_output_stream(path) as out:
        if isinstance(source, Path):
            with open(source, "rb") as local:
                while chunk := local.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        else:
            digest.update(source)
            size = len(source)
            out.write(source)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _children(fs: pafs.FileSystem, path: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return [info.base_name for info in infos if info.type == pafs.FileType.Directory]


def _body_digest(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        return resolve_uri(uri)
    except StorageError as exc:
        raise SnapshotError(str(exc)) from exc


def _child(uri: str, name: str) -> str:
    return f"{uri.rstrip('/')}/{name}"
