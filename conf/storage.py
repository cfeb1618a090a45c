"""Storage locations through pyarrow.fs: a URI (s3://, gs://) or a plain local path.

`storage.root` and every folder under it (snapshots, the model registry, the traffic policy,
the ingest health document) are opened here. It sits in `conf`, the bottom layer, because its
users span the layers: `streams.ingest_health`, `shards.snapshot`, `encoder.registry` and
`serve.traffic` all import it downward, and none of them owns the others' files.

`resolve_uri` raises StorageError for a location that cannot be opened at all. Reads and
writes through the filesystem it returns raise the filesystem's own errors (OSError,
pyarrow.ArrowException), which each caller wraps in its package's error with what it was doing.
"""

from __future__ import annotations

import os
import uuid

import pyarrow as pa
import pyarrow.fs as pafs

from conf.errors import StorageError


def resolve_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of a URI; a plain path is a local one (relative to the cwd)."""
    if "://" in uri:
        try:
            fs, path = pafs.FileSystem.from_uri(uri)
        except (ValueError, pa.ArrowException) as exc:
            raise StorageError(f"cannot open storage location {uri}: {exc}") from exc
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def replace_file(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Replace a small file whole: readers see the old content or the new, never a part.

    The data goes to a temporary file beside it, then moves over it: rename(2) on a local
    disk, one copied object on S3 and GCS (a PUT is visible whole or not at all).
    """
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with fs.open_output_stream(temporary) as out:
        out.write(data)
    fs.move(temporary, path)
