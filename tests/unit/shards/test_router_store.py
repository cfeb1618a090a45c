"""A generation's router on storage: round trip, damage refused, config checked, the sample."""

from pathlib import Path

import numpy as np
import pytest

from conf.config import PinstreamConfig
from shards.exceptions import CorruptRouter, RouterError, RouterNotFound
from shards.router import train_router
from shards.router_store import (
    CENTROIDS_FILE,
    GROUP_SHARDS_FILE,
    has_router,
    load_router,
    read_router,
    sample_snapshots,
    save_router,
)
from shards.shard_state import ShardState
from streams.embeddings_log import delete_rows, upsert_rows
from streams.synthetic import PinGenerator

DIM = 16
SHARDS = 3
GROUPS = 12


def unit(n: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def centroid_config(tmp_path: Path) -> PinstreamConfig:
    return PinstreamConfig().with_values(
        {
            "storage.root": str(tmp_path / "store"),
            "shards.dim": DIM,
            "shards.count": SHARDS,
            "shards.routing": "centroid",
            "shards.route_groups": GROUPS,
            "shards.route_nprobe": 3,
        }
    )


def test_a_saved_router_loads_back_equal_and_routes_the_same(tmp_path: Path) -> None:
    cfg = centroid_config(tmp_path)
    router = train_router(unit(2_000, 0), SHARDS, GROUPS, "ip", seed=1)
    assert not has_router(cfg.router_root())
    uri = save_router(cfg.router_root(), router, {"seed": 1})
    assert has_router(cfg.router_root()) and uri.startswith(cfg.router_root())
    loaded = load_router(cfg)
    assert loaded is not None and loaded.nprobe == 3  # the config's route_nprobe
    np.testing.assert_array_equal(loaded.centroids, router.centroids)
    np.testing.assert_array_equal(loaded.group_shards, router.group_shards)
    queries = unit(200, 5)
    np.testing.assert_array_equal(loaded.owner_shards(queries), router.owner_shards(queries))
    _, meta = read_router(cfg.router_root())
    assert (meta["seed"], meta["groups"], meta["num_shards"]) == (1, GROUPS, SHARDS)


def test_hash_mode_has_no_router(tmp_path: Path) -> None:
    assert load_router(centroid_config(tmp_path).with_value("shards.routing", "hash")) is None


def test_centroid_mode_without_a_router_names_the_command(tmp_path: Path) -> None:
    cfg = centroid_config(tmp_path).for_generation("g2", "base")
    with pytest.raises(RouterNotFound, match=r"`pinstream router train --generation g2`"):
        load_router(cfg)


@pytest.mark.parametrize("name", [CENTROIDS_FILE, GROUP_SHARDS_FILE, "manifest.json"])
def test_a_damaged_router_is_refused(tmp_path: Path, name: str) -> None:
    cfg = centroid_config(tmp_path)
    uri = save_router(cfg.router_root(), train_router(unit(500, 0), SHARDS, GROUPS, "ip"))
    path = Path(uri) / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptRouter, match="damaged and refused"):
        load_router(cfg)


def test_a_router_with_a_missing_file_is_refused(tmp_path: Path) -> None:
    cfg = centroid_config(tmp_path)
    uri = save_router(cfg.router_root(), train_router(unit(500, 0), SHARDS, GROUPS, "ip"))
    (Path(uri) / GROUP_SHARDS_FILE).unlink()
    with pytest.raises(CorruptRouter, match="missing"):
        load_router(cfg)


@pytest.mark.parametrize(
    "change",
    [
        {"shards.count": SHARDS + 1},
        {"shards.route_groups": GROUPS * 2},
        {"shards.metric": "l2"},
    ],
)
def test_a_router_trained_for_another_layout_is_refused(tmp_path: Path, change: dict) -> None:
    cfg = centroid_config(tmp_path)
    save_router(cfg.router_root(), train_router(unit(500, 0), SHARDS, GROUPS, "ip"))
    with pytest.raises(RouterError, match=r"was trained for \(shards, groups, dim, metric\)"):
        load_router(cfg.with_values(change))


def test_the_sample_comes_from_the_live_vectors_of_each_shards_newest_snapshot(
    tmp_path: Path,
) -> None:
    cfg = centroid_config(tmp_path).with_value("shards.routing", "hash")
    with pytest.raises(RouterError, match="seal them first"):
        sample_snapshots(cfg, 10)
    events = [p.event for p in PinGenerator(seed=2).pins(90)]
    vectors = unit(90, 3)
    live = set()
    for shard in range(SHARDS):
        mine = list(range(shard * 30, shard * 30 + 30))
        state = ShardState(cfg.shards)
        state.apply_rows(upsert_rows([events[i] for i in mine], vectors[mine], 1, "g"))
        state.apply_rows(delete_rows([events[i].pin_id for i in mine[:10]], 2, "g", DIM))
        state.save(cfg.snapshot_root(shard), {shard: 1})
        live.update(mine[10:])
    sample = sample_snapshots(cfg, 1_000)
    assert sample.shape == (60, DIM)  # every live vector, no deleted one
    found = {int(np.argmax(vectors @ row)) for row in sample}
    assert found == live
    small = sample_snapshots(cfg, 12, seed=4)
    assert small.shape == (12, DIM)
    np.testing.assert_array_equal(small, sample_snapshots(cfg, 12, seed=4))
