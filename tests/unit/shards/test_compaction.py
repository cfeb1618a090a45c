"""Offline seal and compact of snapshots (what `pinstream seal|compact` run)."""

from pathlib import Path

import numpy as np
import pyarrow as pa

from shards import ShardConfig, ShardIndex, ShardState
from shards.compaction import compact_snapshot, seal_snapshot
from streams.embeddings_log import log_schema

DIM = 8


def rows(start: int, stop: int, op: str = "upsert") -> pa.Table:
    rng = np.random.default_rng(start)
    return pa.Table.from_pylist(
        [
            {
                "pin_id": f"pin-{i}",
                "op": op,
                "version": 1_000 * (op == "delete") + i,
                "generation": "g",
                "vector": rng.standard_normal(DIM).tolist() if op == "upsert" else None,
                "title": f"title {i}",
                "board": "b",
                "event_time": 0,
            }
            for i in range(start, stop)
        ],
        schema=log_schema(DIM),
    )


def test_seal_then_compact_keep_pins_offsets_and_results(tmp_path: Path) -> None:
    config = ShardConfig(dim=DIM, sealed_index="Flat", growing_limit=100, compact_dead_fraction=1.0)
    state = ShardState(config)
    state.apply_rows(rows(0, 250))
    state.index.seal()  # sealed before the deletes, so compaction is what drops them
    state.apply_rows(rows(250, 300))
    state.apply_rows(rows(0, 60, op="delete"))
    state.save(str(tmp_path), log_offsets={1: 310})
    queries = np.random.default_rng(0).standard_normal((5, DIM)).astype(np.float32)
    expected = state.search(queries, 10)

    sealed = seal_snapshot(str(tmp_path))
    assert sealed["sealed_vectors"] == 50 and sealed["log_offsets"] == {1: 310}
    assert sealed["snapshot"].endswith("snapshot-000002") and sealed["pruned"] == []
    after_seal = ShardState.load(str(tmp_path))
    assert after_seal.index.stats()["growing"] == 0
    assert after_seal.search(queries, 10) == expected

    compacted = compact_snapshot(str(tmp_path), keep=1)
    assert compacted["merged_segments"] == 4 and compacted["dropped_vectors"] == 60
    assert compacted["live"] == 240 and compacted["segments"] == 1
    assert len(compacted["pruned"]) == 2
    restored = ShardState.load_latest(str(tmp_path))
    assert restored.index.log_offsets == {1: 310}
    assert restored.live_pins() == state.live_pins()
    assert restored.search(queries, 10) == expected


def test_compact_works_on_a_plain_index_snapshot(tmp_path: Path) -> None:
    index = ShardIndex(ShardConfig(dim=DIM, growing_limit=50))
    index.upsert(np.arange(120), np.random.default_rng(1).standard_normal((120, DIM)))
    index.delete(np.arange(30))
    index.save(str(tmp_path))
    assert compact_snapshot(str(tmp_path))["live"] == 90
    assert len(ShardIndex.load(str(tmp_path))) == 90
