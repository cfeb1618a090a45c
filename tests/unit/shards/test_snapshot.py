"""Snapshots: round trips equal the original, damage is refused, load_latest falls back."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conf.config import ShardsConfig
from shards import CorruptSnapshot, ShardIndex, SnapshotNotFound
from shards.snapshot import CURRENT, MANIFEST, list_snapshots, open_snapshot, prune_snapshots
from tests.unit.shards.builds import DEADLINE_S, BlockedBuilds

DIM = 16


def build_index(metric: str = "ip", sealed_index: str = "IVF256,Flat") -> ShardIndex:
    """A shard with every kind of segment: sealed with dead rows, frozen, and growing."""
    rng = np.random.default_rng(0)
    config = ShardsConfig(
        dim=DIM,
        metric=metric,
        sealed_index=sealed_index,
        growing_limit=700,
        compact_dead_fraction=1.0,
    )
    index = ShardIndex(config)
    keys = np.arange(2_000, dtype=np.int64) * 3
    index.upsert(keys[:1_400], rng.standard_normal((1_400, DIM)), versions=np.arange(1_400))
    index.seal()
    index.delete(keys[:100], versions=np.arange(1_400, 1_500))
    index.upsert(keys[100:150], rng.standard_normal((50, DIM)), versions=np.arange(1_500, 1_550))
    index.upsert(keys[1_400:], rng.standard_normal((600, DIM)))
    index.delete([999_999], versions=[7])  # a tombstone for an id never written
    return index


def queries() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((30, DIM)).astype(np.float32)


def assert_same(a: ShardIndex, b: ShardIndex) -> None:
    assert len(a) == len(b) and a.config == b.config
    for k in (1, 10, 50):
        scores_a, ids_a = a.search(queries(), k)
        scores_b, ids_b = b.search(queries(), k)
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_array_equal(scores_a, scores_b)
    for key in (0, 3, 300, 4_497, 5_997, 999_999):
        assert a.version(key) == b.version(key)
        va, vb = a.vector(key), b.vector(key)
        assert (va is None) == (vb is None)
        if va is not None:
            np.testing.assert_array_equal(va, vb)


@pytest.mark.parametrize(
    ("metric", "sealed_index"), [("ip", "IVF256,Flat"), ("l2", "IVF8,PQ4x4fs"), ("ip", "HNSW8")]
)
def test_round_trip_gives_identical_results(tmp_path: Path, metric: str, sealed_index: str):
    index = build_index(metric, sealed_index)
    uri = index.save(str(tmp_path / "shard-0"), log_offsets={0: 2_150})
    assert uri == f"{tmp_path}/shard-0/snapshot-000001"
    loaded = ShardIndex.load(str(tmp_path / "shard-0"))
    assert_same(index, loaded)
    assert loaded.log_offsets == {0: 2_150}
    assert loaded.stats()["segments"] == index.stats()["segments"]
    # Writes after the load follow the loaded versions and clock.
    assert loaded.version(3) == 1_401
    assert loaded.upsert([3], np.ones((1, DIM)), versions=[1_401]) == 0
    assert loaded.upsert([3], np.ones((1, DIM))) == 1


def test_a_frozen_segment_is_saved_exactly_and_sealed_after_load(
    tmp_path: Path, blocked_builds: BlockedBuilds
) -> None:
    index = ShardIndex(ShardsConfig(dim=DIM, growing_limit=700))
    index.upsert(np.arange(900), np.random.default_rng(2).standard_normal((900, DIM)))
    assert blocked_builds.started.wait(DEADLINE_S)
    index.save(str(tmp_path))
    blocked_builds.release.set()
    loaded = ShardIndex.load(str(tmp_path))
    assert index.wait_idle(DEADLINE_S) and loaded.wait_idle(DEADLINE_S)
    assert [s["sealed"] for s in loaded.stats()["segments"]] == [True]
    assert_same(index, loaded)


def test_file_uri_and_relative_path_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    index = build_index()
    index.save(f"file://{tmp_path}/a")
    assert_same(index, ShardIndex.load(f"file://{tmp_path}/a"))
    monkeypatch.chdir(tmp_path)
    index.save("relative/b")
    assert_same(index, ShardIndex.load(str(tmp_path / "relative" / "b")))


def snapshot_file(root: Path, name: str) -> Path:
    return root / "snapshot-000002" / name


def two_snapshots(root: Path) -> ShardIndex:
    """Snapshot 1 of a smaller index, snapshot 2 (CURRENT) of the full one; returns the first."""
    first = ShardIndex(ShardsConfig(dim=DIM))
    first.upsert([1, 2], np.eye(2, DIM, dtype=np.float32))
    first.save(str(root), log_offsets={0: 2})
    build_index().save(str(root), log_offsets={0: 2_150})
    return first


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "file_name", "message"),
    [
        (truncate, "segment-0000-index.faiss", "fails its checksum"),
        (flip_byte, "segment-0000-index.faiss", "fails its checksum"),
        (flip_byte, "keys-ids.npy", "fails its checksum"),
        (Path.unlink, "growing-vectors.npy", "is missing"),
        (Path.unlink, MANIFEST, "partial snapshot"),
        (truncate, MANIFEST, "not a valid manifest"),
    ],
)
def test_damage_is_refused_and_load_latest_falls_back(
    tmp_path: Path, damage, file_name: str, message: str
) -> None:
    first = two_snapshots(tmp_path)
    damage(snapshot_file(tmp_path, file_name))
    with pytest.raises(CorruptSnapshot, match=message):
        ShardIndex.load(str(tmp_path))
    fallback = ShardIndex.load_latest(str(tmp_path))
    assert_same(first, fallback)
    assert fallback.log_offsets == {0: 2}


def test_a_manifest_edited_in_place_fails_its_own_checksum(tmp_path: Path) -> None:
    two_snapshots(tmp_path)
    path = snapshot_file(tmp_path, MANIFEST)
    manifest = json.loads(path.read_text())
    manifest["body"]["log_offsets"] = {"0": 9_999_999}
    path.write_text(json.dumps(manifest))
    with pytest.raises(CorruptSnapshot, match="fails its own checksum"):
        ShardIndex.load(str(tmp_path))
    assert ShardIndex.load_latest(str(tmp_path)).log_offsets == {0: 2}


def test_a_pickled_array_is_refused(tmp_path: Path) -> None:
    """A snapshot whose manifest matches a pickled .npy still loads nothing through pickle."""
    index = ShardIndex(ShardsConfig(dim=DIM))
    index.upsert([1], np.ones((1, DIM)))
    uri = index.save(str(tmp_path))
    path = Path(uri) / "keys-ids.npy"
    np.save(path, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    manifest = json.loads((Path(uri) / MANIFEST).read_text())
    body = manifest["body"]
    body["files"]["keys-ids.npy"] = {
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    manifest["sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    (Path(uri) / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CorruptSnapshot, match=r"not a valid \.npy"):
        ShardIndex.load(uri)


def test_no_snapshot_at_all(tmp_path: Path) -> None:
    with pytest.raises(SnapshotNotFound):
        ShardIndex.load(str(tmp_path / "nothing"))
    with pytest.raises(SnapshotNotFound):
        ShardIndex.load_latest(str(tmp_path / "nothing"))
    two_snapshots(tmp_path)
    flip_byte(snapshot_file(tmp_path, "keys-ids.npy"))
    flip_byte(tmp_path / "snapshot-000001" / "keys-ids.npy")
    with pytest.raises(SnapshotNotFound, match="refused"):
        ShardIndex.load_latest(str(tmp_path))


def test_current_is_replaced_atomically_and_a_newer_partial_snapshot_is_ignored(
    tmp_path: Path,
) -> None:
    two_snapshots(tmp_path)
    assert (tmp_path / CURRENT).read_text() == "snapshot-000002\n"
    assert not list(tmp_path.glob(f"{CURRENT}.tmp-*"))
    # A writer that died before its manifest: newer, but never trusted.
    (tmp_path / "snapshot-000003").mkdir()
    (tmp_path / "snapshot-000003" / "keys-ids.npy").write_bytes(b"partial")
    assert list_snapshots(str(tmp_path)) == [
        f"{tmp_path}/snapshot-000002",
        f"{tmp_path}/snapshot-000003",
        f"{tmp_path}/snapshot-000001",
    ]
    assert ShardIndex.load_latest(str(tmp_path)).log_offsets == {0: 2_150}
    with pytest.raises(CorruptSnapshot, match="partial"):
        open_snapshot(str(tmp_path / "snapshot-000003"))


def test_prune_keeps_current_and_the_newest_older_ones(tmp_path: Path) -> None:
    index = ShardIndex(ShardsConfig(dim=DIM))
    for _ in range(5):
        index.save(str(tmp_path))
    deleted = prune_snapshots(str(tmp_path), keep=2)
    assert deleted == [f"{tmp_path}/snapshot-00000{n}" for n in (3, 2, 1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        CURRENT,
        "snapshot-000004",
        "snapshot-000005",
    ]


def test_bad_log_offsets_are_refused(tmp_path: Path) -> None:
    index = ShardIndex(ShardsConfig(dim=DIM))
    with pytest.raises(ValueError, match="offset must be an int >= 0"):
        index.save(str(tmp_path), log_offsets={0: -1})
    with pytest.raises(ValueError, match="partition must be an int >= 0"):
        index.save(str(tmp_path), log_offsets={"0": 1})  # type: ignore[dict-item]
