"""The model registry: fine-tuned encoder versions and the production pointer, via pyarrow.fs.

Layout under the root (a local path, s3://, gs://; by default <storage.root>/models):

    root/versions/ft-0003/<files>          config.json, model.pt (a state_dict), tokenizer
                                           files: written first
    root/versions/ft-0003/manifest.json    written last: base model, training-data hash,
                                           metrics, training settings, creation time, and
                                           the size and sha256 of every file
    root/production.json                   the production pointer, the stack of versions it
                                           went through, and the history of every move

A version is published like a shard snapshot, with the same helpers (shards/snapshot.py):
a directory without a verified manifest is partial and never listed or loaded, and once
published a version never changes. `materialise` copies a version into a local cache
folder for the TextEncoder, checking every file against the manifest on the way, and
checks the cached copy again on every later call: a damaged file is refused with
CorruptModel, never loaded. The production pointer is replaced whole (temp file + move).
"base" names the packaged base model: always available, production before any promote.
One writer per registry at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from conf.errors import StorageError
from conf.storage import replace_file, resolve_uri
from encoder.exceptions import CorruptModel, ModelNotFound, RegistryError
from shards.exceptions import CorruptSnapshot, SnapshotError, SnapshotNotFound
from shards.snapshot import Snapshot, open_directory, write_directory
from streams.events import now_ms

log = logging.getLogger(__name__)

BASE = "base"
VERSIONS = "versions"
PRODUCTION = "production.json"
CACHE_ENV = "PINSTREAM_MODEL_CACHE"
_VERSION_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,47}")
_NUMBERED = re.compile(r"ft-(\d{4,})")
_CHUNK = 4 << 20


@dataclass(frozen=True)
class ModelVersion:
    """A published version, as its verified manifest describes it."""

    version: str
    uri: str
    base_model: str
    data_hash: str
    metrics: dict[str, Any]
    training: dict[str, Any]
    created_ms: int
    files: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Production:
    """The production pointer: `stack` ends with the current version (rollback pops it)."""

    version: str
    stack: tuple[str, ...]
    history: tuple[dict[str, Any], ...]


def default_cache_dir() -> Path:
    """Where versions are materialised: $PINSTREAM_MODEL_CACHE, else ~/.cache/pinstream/models."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pinstream" / "models")


def check_version_id(version: str) -> str:
    """`version` if it is a valid id (lower-case letters, digits, `._-`), else ValueError."""
    if not isinstance(version, str) or not _VERSION_ID.fullmatch(version):
        raise ValueError(f"a model version id is [a-z0-9][a-z0-9._-]{{0,47}}, got {version!r}")
    return version


class ModelRegistry:
    """Publish, list, verify and materialise model versions; move the production pointer."""

    def __init__(self, root: str, cache_dir: str | Path | None = None) -> None:
        # A local root is made absolute here, so a worker with another cwd finds it too.
        self.root = root.rstrip("/") if "://" in root else os.path.abspath(root)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def publish(
        self,
        folder: Path,
        *,
        base_model: str,
        data_hash: str,
        metrics: Mapping[str, Any],
        training: Mapping[str, Any],
        version: str | None = None,
    ) -> ModelVersion:
        """Publish every file of `folder` as a new version (default id: the next ft-NNNN)."""
        files = {path.name: path for path in sorted(folder.iterdir()) if path.is_file()}
        if "config.json" not in files:
            raise RegistryError(f"{folder} is not a model folder: it has no config.json")
        fs, root_path = self._fs()
        version = check_version_id(version) if version is not None else self._next_id(fs, root_path)
        if version == BASE:
            raise RegistryError(f"{BASE!r} names the packaged model; pick another version id")
        meta = {
            "kind": "pinstream-model",
            "version": version,
            "base_model": base_model,
            "data_hash": data_hash,
            "metrics": dict(metrics),
            "training": dict(training),
        }
        try:
            write_directory(fs, self._path(root_path, version), files, meta, self.uri(version))
        except SnapshotError as exc:
            raise RegistryError(f"cannot publish {version}: {exc}") from exc
        except (OSError, pa.ArrowException) as exc:
            raise RegistryError(f"cannot publish {version} to {self.root}: {exc}") from exc
        log.info("published model version %s", self.uri(version))
        return self.get(version)

    def uri(self, version: str) -> str:
        """Where a version lives."""
        return f"{self.root}/{VERSIONS}/{version}"

    def get(self, version: str) -> ModelVersion:
        """A version whose manifest verifies (its files are checked when read)."""
        return _described(self._open(version))

    def versions(self) -> list[ModelVersion]:
        """Every complete version, oldest first; partial or damaged ones are logged and left out."""
        fs, root_path = self._fs()
        try:
            infos = fs.get_file_info(
                pafs.FileSelector(f"{root_path}/{VERSIONS}", allow_not_found=True)
            )
        except (OSError, pa.ArrowException) as exc:
            raise RegistryError(f"cannot list {self.root}: {exc}") from exc
        found = []
        for info in infos:
            if info.type != pafs.FileType.Directory or not _VERSION_ID.fullmatch(info.base_name):
                continue
            try:
                found.append(self.get(info.base_name))
            except (ModelNotFound, CorruptModel) as exc:
                log.warning("model version left out: %s", exc)
        return sorted(found, key=lambda v: (v.created_ms, v.version))

    def verify(self, version: str) -> ModelVersion:
        """Read every file of a version against its manifest; CorruptModel on any damage."""
        entry = self._open(version)
        try:
            for name in entry.meta["files"]:
                entry.read_bytes(name)
        except CorruptSnapshot as exc:
            raise CorruptModel(f"model version {version}: {exc}") from exc
        return _described(entry)

    def materialise(self, version: str) -> Path:
        """A local folder holding the version's files, every one matching its checksum."""
        entry = self._open(version)
        files: dict[str, dict[str, Any]] = entry.meta["files"]
        root_key = hashlib.sha256(self.root.encode()).hexdigest()[:12]
        target = self.cache_dir / root_key / version
        if _cached(target, files):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{version}.tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            for name in files:
                entry.copy_to(name, staging / name)
            _swap_in(staging, target)
        except CorruptSnapshot as exc:
            raise CorruptModel(f"model version {version}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if not _cached(target, files):  # another process swapped in a copy that is damaged
            raise CorruptModel(f"model version {version}: the cached copy in {target} is damaged")
        log.info("materialised model version %s in %s", version, target)
        return target

    def production(self) -> Production:
        """The production pointer (the base model when nothing was ever promoted)."""
        fs, root_path = self._fs()
        try:
            with fs.open_input_stream(f"{root_path}/{PRODUCTION}") as stream:
                raw = stream.read()
        except FileNotFoundError:
            return Production(BASE, (), ())
        except (OSError, pa.ArrowException) as exc:
            raise RegistryError(f"cannot read {self.root}/{PRODUCTION}: {exc}") from exc
        try:
            body = json.loads(raw)
            stack = tuple(check_version_id(v) for v in body["stack"])
            history = tuple(dict(event) for event in body["history"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"{self.root}/{PRODUCTION} is damaged: {exc}") from exc
        return Production(stack[-1] if stack else BASE, stack, history)

    def promote(self, version: str) -> Production:
        """Point production at `version` (verified first); promoting the current one is a no-op."""
        if version != BASE:
            self.verify(version)
        current = self.production()
        if version == current.version:
            return current
        return self._move(current, (*current.stack, version), "promote", version)

    def rollback(self) -> Production:
        """Point production back at the version it pointed at before the current one."""
        current = self.production()
        if not current.stack:
            raise RegistryError("nothing to roll back: production is the base model")
        stack = current.stack[:-1]
        previous = stack[-1] if stack else BASE
        if previous != BASE:
            self.verify(previous)
        return self._move(current, stack, "rollback", previous)

    def _move(
        self, current: Production, stack: tuple[str, ...], action: str, version: str
    ) -> Production:
        event = {
            "action": action,
            "version": version,
            "previous": current.version,
            "at_ms": now_ms(),
        }
        body = {"stack": list(stack), "history": [*current.history, event]}
        fs, root_path = self._fs()
        try:
            fs.create_dir(root_path, recursive=True)
            replace_file(fs, f"{root_path}/{PRODUCTION}", json.dumps(body, indent=1).encode())
        except (OSError, pa.ArrowException) as exc:
            raise RegistryError(f"cannot write {self.root}/{PRODUCTION}: {exc}") from exc
        log.info("production: %s %s (was %s)", action, version, current.version)
        return Production(version, stack, (*current.history, event))

    def _open(self, version: str) -> Snapshot:
        try:
            check_version_id(version)
        except ValueError as exc:
            raise ModelNotFound(str(exc)) from exc
        fs, root_path = self._fs()
        try:
            entry = open_directory(fs, self._path(root_path, version), self.uri(version))
        except SnapshotNotFound as exc:
            raise ModelNotFound(f"no model version {version} in {self.root}") from exc
        except CorruptSnapshot as exc:
            raise CorruptModel(f"model version {version}: {exc}") from exc
        except (OSError, pa.ArrowException) as exc:
            raise RegistryError(f"cannot read model version {version}: {exc}") from exc
        if entry.meta.get("kind") != "pinstream-model" or entry.meta.get("version") != version:
            raise CorruptModel(f"{self.uri(version)} does not hold model version {version}")
        return entry

    def _fs(self) -> tuple[pafs.FileSystem, str]:
        try:
            return resolve_uri(self.root)
        except StorageError as exc:
            raise RegistryError(f"cannot open model registry {self.root}: {exc}") from exc

    @staticmethod
    def _path(root_path: str, version: str) -> str:
        return f"{root_path}/{VERSIONS}/{version}"

    @staticmethod
    def _next_id(fs: pafs.FileSystem, root_path: str) -> str:
        infos = fs.get_file_info(pafs.FileSelector(f"{root_path}/{VERSIONS}", allow_not_found=True))
        numbers = [int(m[1]) for info in infos if (m := _NUMBERED.fullmatch(info.base_name))]
        return f"ft-{max(numbers, default=0) + 1:04d}"


def _described(entry: Snapshot) -> ModelVersion:
    meta = entry.meta
    return ModelVersion(
        version=meta["version"],
        uri=entry.uri,
        base_model=meta.get("base_model", ""),
        data_hash=meta.get("data_hash", ""),
        metrics=dict(meta.get("metrics", {})),
        training=dict(meta.get("training", {})),
        created_ms=int(meta["created_ms"]),
        files=dict(meta["files"]),
    )


def _cached(folder: Path, files: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether `folder` holds every listed file with its listed size and sha256."""
    for name, entry in files.items():
        path = folder / name
        try:
            if path.stat().st_size != entry["bytes"]:
                return False
            digest = hashlib.sha256()
            with open(path, "rb") as stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
        except OSError:
            return False
        if digest.hexdigest() != entry["sha256"]:
            return False
    return True


def _swap_in(staging: Path, target: Path) -> None:
    """Move a complete staging folder to `target`, replacing a damaged copy there."""
    aside = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
    try:
        if target.exists():
            target.rename(aside)
        staging.rename(target)
    except OSError:
        if not target.exists():  # not a lost race with another process: a real failure
            raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
