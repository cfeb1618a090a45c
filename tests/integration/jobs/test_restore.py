"""Restoring the previous run's pins into a fresh log: the new snapshots equal the old ones."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conf.config import PinstreamConfig
from jobs.restore import RestoreError, restore_pins
from shards.arrays import RESTORED_VERSION
from shards.log_follower import resume
from shards.shard_state import ShardState
from streams.embeddings_log import delete_rows, upsert_rows
from streams.routing import shard_of
from streams.synthetic import PinGenerator

PINS = 120


def write_old_snapshots(cfg: PinstreamConfig, storage_root: str) -> dict[str, tuple]:
    """Snapshots of a run whose log is gone (offsets far past a fresh log's end) under
    storage_root; the live pins they hold: pin_id -> (title, board, vector)."""
    events = [p.event for p in PinGenerator(seed=3, id_prefix="rst").pins(PINS)]
    vectors = np.random.default_rng(3).standard_normal((PINS, cfg.shards.dim)).astype(np.float32)
    deleted = {e.pin_id for e in events[:10]}
    old = cfg.with_value("storage.root", storage_root)
    for shard in range(cfg.shards.count):
        mine = [i for i, e in enumerate(events) if shard_of(e.pin_id, cfg.shards.count) == shard]
        state = ShardState(cfg.shards)
        state.apply_rows(
            upsert_rows([events[i] for i in mine], vectors[mine], 500, cfg.model.generation)
        )
        gone = sorted(deleted & {events[i].pin_id for i in mine})
        state.apply_rows(delete_rows(gone, 600, cfg.model.generation, cfg.shards.dim))
        state.save(old.snapshot_root(shard), log_offsets={shard: 9_000})
        state.index.close()
    return {
        e.pin_id: (e.title, e.board, vectors[i])
        for i, e in enumerate(events)
        if e.pin_id not in deleted
    }


def restored_snapshots(cfg: PinstreamConfig) -> dict[str, tuple]:
    """What the new snapshots hold, checking each covers its new log partition from 0."""
    held = {}
    for shard in range(cfg.shards.count):
        follower, source = resume(cfg, shard)
        state: ShardState = follower.state
        assert source is not None and 0 < follower.next_offset < 9_000
        for pin_id in state.live_pins():
            pin = state.get(pin_id)
            assert pin is not None and pin["version"] == RESTORED_VERSION
            held[pin_id] = (pin["title"], pin["board"], pin["vector"])
        state.index.close()
    return held


def assert_same_pins(got: dict[str, tuple], expected: dict[str, tuple]) -> None:
    assert got.keys() == expected.keys()
    for pin_id, (title, board, vector) in expected.items():
        assert got[pin_id][:2] == (title, board)
        np.testing.assert_array_equal(got[pin_id][2], vector)


def test_every_live_pin_comes_back_into_the_new_log(cfg: PinstreamConfig) -> None:
    expected = write_old_snapshots(cfg, cfg.storage.root)
    assert restore_pins(cfg) == len(expected) == PINS - 10
    assert_same_pins(restored_snapshots(cfg), expected)
    assert sorted(p.name for p in Path(cfg.storage.root).iterdir()) == ["snapshots"]


def test_a_restore_that_stopped_half_way_starts_again_from_the_old_snapshots(
    cfg: PinstreamConfig,
) -> None:
    root = Path(cfg.storage.root)
    expected = write_old_snapshots(cfg, str(root / "previous"))
    # What the interrupted restore had written: a snapshot of its own log, now gone too.
    partial = Path(cfg.snapshot_root(0)) / "snapshot-000001"
    partial.mkdir(parents=True)
    (partial / "pins.arrow").write_bytes(b"half")
    assert restore_pins(cfg) == len(expected)
    assert_same_pins(restored_snapshots(cfg), expected)
    assert not (root / "previous").exists()


@pytest.mark.parametrize("layout", ["nothing", "an empty snapshots folder"])
def test_nothing_to_restore(cfg: PinstreamConfig, layout: str) -> None:
    if layout != "nothing":
        (Path(cfg.storage.root) / "snapshots").mkdir()
        assert restore_pins(cfg) == 0
    else:
        assert restore_pins(cfg) is None
        assert list(Path(cfg.storage.root).iterdir()) == []


def test_snapshots_that_cannot_be_loaded_are_kept_not_restored_as_empty(
    cfg: PinstreamConfig,
) -> None:
    """Snapshots of another file layout (an older pinstream) hold pins this version cannot
    read: the restore stops with the reason and keeps them, rather than restore nothing."""
    write_old_snapshots(cfg, cfg.storage.root)
    for shard in range(cfg.shards.count):
        for path in Path(cfg.snapshot_root(shard)).glob("snapshot-*/manifest.json"):
            manifest = json.loads(path.read_text())
            manifest["body"]["layout"] = 1  # checksummed again: intact, only older
            canonical = json.dumps(manifest["body"], sort_keys=True, separators=(",", ":"))
            manifest["sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
            path.write_text(json.dumps(manifest))
    with pytest.raises(RestoreError, match="can be loaded"):
        restore_pins(cfg)
    kept = list(Path(cfg.storage.root).rglob("manifest.json"))
    assert len(kept) == cfg.shards.count
