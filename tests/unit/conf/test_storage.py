"""Storage locations: a plain path is local, a URI that cannot be opened is a StorageError."""

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from conf.errors import PinstreamError, StorageError
from conf.storage import replace_file, resolve_uri


def test_a_plain_path_is_local_and_absolute(tmp_path: Path) -> None:
    fs, path = resolve_uri(str(tmp_path))
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == str(tmp_path)


def test_a_location_that_cannot_be_opened_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="cannot open storage location nosuch://x") as info:
        resolve_uri("nosuch://x")
    assert isinstance(info.value, PinstreamError)


def test_replace_file_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    fs, path = resolve_uri(str(tmp_path))
    replace_file(fs, f"{path}/doc.json", b"old")
    replace_file(fs, f"{path}/doc.json", b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]
    assert (tmp_path / "doc.json").read_bytes() == b"new"
