"""Shard replicas over snapshots: start from the newest good one, swap in newer ones under a
steady query stream, and always equal the fold of the whole log."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from conf.config import PinstreamConfig
from jobs.sealer import seal_shard
from serve.shard_query import ShardQuery
from serve.shard_replica import ShardReplica
from shards.snapshot import list_snapshots
from streams.embeddings_log import EmbeddingsLogWriter, delete_rows, log_schema
from streams.local_broker import LocalBroker
from tests.integration.conftest import unique_config
from tests.waiting import wait_until

DIM = 384


GENERATION = "minilm-l6-v2-base"  # the default config's


def upserts(first: int, count: int, version: int) -> pa.Table:
    """Pins p{first}..: random unit vectors, titled with their version."""
    vectors = np.random.default_rng(first * 7 + version).standard_normal((count, DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    pin_ids = [f"p{i}" for i in range(first, first + count)]
    return pa.table(
        {
            "pin_id": pin_ids,
            "op": ["upsert"] * count,
            "version": [version] * count,
            "generation": [GENERATION] * count,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM),
            "title": [f"{pin} v{version}" for pin in pin_ids],
            "board": ["b"] * count,
            "event_time": [1] * count,
        },
        schema=log_schema(DIM),
    )


class Log:
    """The shard's log partition, and the oracle fold of everything written to it."""

    def __init__(self, cfg: PinstreamConfig) -> None:
        self.writer = EmbeddingsLogWriter(cfg.broker.bootstrap, cfg.topics.embeddings, 1)
        self.live: dict[str, str] = {}  # pin_id -> title

    def write(self, rows: pa.Table) -> None:
        self.writer.write(rows)
        self.writer.flush()
        for pin_id, op, title in zip(
            *(rows.column(name).to_pylist() for name in ("pin_id", "op", "title")), strict=True
        ):
            if op == "upsert":
                self.live[pin_id] = title
            else:
                self.live.pop(pin_id, None)

    def delete(self, first: int, count: int, version: int) -> None:
        pin_ids = [f"p{i}" for i in range(first, first + count)]
        self.write(delete_rows(pin_ids, version, GENERATION, DIM))


def titles(replica: ShardReplica) -> dict[str, str]:
    return {pin_id: info.title for pin_id, info in replica.state.live_pins().items()}


@pytest.fixture
def cfg(broker: LocalBroker) -> PinstreamConfig:
    base = unique_config(broker.bootstrap, shards=1)
    return (
        base.with_value("shards.growing_limit", 150)
        .with_value("serve.snapshot_poll_s", 0.2)
        .with_value("serve.shard_ready_idle_s", 0.3)
    )


def test_replica_starts_from_the_newest_good_snapshot(cfg: PinstreamConfig) -> None:
    log = Log(cfg)
    log.write(upserts(0, 300, version=1))
    first = seal_shard(cfg, 0)
    assert first["published"] and first["source"] is None and first["log_offset"] >= 1
    assert first["live"] == 300
    assert not seal_shard(cfg, 0)["published"], "nothing new in the log: no new snapshot"

    log.write(upserts(200, 200, version=2))  # 100 updates, 100 new pins
    log.delete(0, 50, version=3)
    second = seal_shard(cfg, 0)
    assert second["source"] == first["snapshot"] and second["applied_records"] >= 2
    assert second["live"] == 350
    log.write(upserts(400, 20, version=4))  # only in the log: the replica must replay it

    replica = ShardReplica(cfg, 0)
    try:
        assert replica.started_from == second["snapshot"]
        assert titles(replica) == log.live
    finally:
        replica.close()

    # A damaged newest snapshot is refused; the replica starts from the one before it.
    newest = Path(list_snapshots(cfg.snapshot_root(0))[0])
    damaged = next(p for p in newest.iterdir() if p.name != "manifest.json")
    damaged.write_bytes(damaged.read_bytes()[:-10])
    replica = ShardReplica(cfg, 0)
    try:
        assert replica.started_from == first["snapshot"]
        assert titles(replica) == log.live
    finally:
        replica.close()


def test_compact_drops_dead_vectors_and_keeps_the_live_set(cfg: PinstreamConfig) -> None:
    log = Log(cfg)
    log.write(upserts(0, 400, version=1))
    seal_shard(cfg, 0)
    log.delete(0, 40, version=2)  # 10% dead: below the automatic threshold (20%)
    compacted = seal_shard(cfg, 0, compact=True)
    assert compacted["published"] and compacted["dropped_vectors"] == 40
    assert compacted["live"] == 360 and compacted["segments"] == 1
    replica = ShardReplica(cfg, 0)
    try:
        assert titles(replica) == log.live
    finally:
        replica.close()


def test_newer_snapshots_swap_in_without_a_failed_or_short_query(cfg: PinstreamConfig) -> None:
    log = Log(cfg)
    log.write(upserts(0, 200, version=1))
    replica = ShardReplica(cfg, 0)
    assert replica.started_from is None
    queries = np.random.default_rng(99).standard_normal((4, DIM)).astype(np.float32)
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def query_stream() -> None:
        while not stop.is_set():
            try:
                results = replica.answer_batch([ShardQuery(q, 10) for q in queries])
                if any(len(hits) != 10 for hits in results):
                    failures.append(f"short result: {[len(hits) for hits in results]}")
                answered[0] += 1
            except Exception as exc:  # any failed query fails the test
                failures.append(repr(exc))

    stream = threading.Thread(target=query_stream, daemon=True)
    stream.start()
    try:
        for round_ in range(3):
            log.write(upserts(200 + 100 * round_, 100, version=2 + round_))
            log.delete(10 * round_, 10, version=2 + round_)
            seal_shard(cfg, 0)
            log.write(upserts(5000 + round_, 1, version=10))  # after the snapshot: replayed
            wait_until(lambda r=round_: replica.stats()["snapshot_swaps"] == r + 1, 30)
        wait_until(lambda: titles(replica) == log.live, 30)
        assert replica.snapshot_uri == list_snapshots(cfg.snapshot_root(0))[0]
    finally:
        stop.set()
        stream.join(10)
        replica.close()
    assert failures == []
    assert answered[0] > 0


def test_the_snapshot_watcher_retries_storage_errors_and_a_bug_fails_the_health_check(
    cfg: PinstreamConfig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    Log(cfg).write(upserts(0, 20, version=1))
    listings: list[str] = []

    def list_snapshots_failing(root: str) -> list[str]:
        listings.append(root)
        if len(listings) <= 2:
            raise OSError("storage unreachable")  # retried at the next poll
        raise TypeError("a bug in the watcher")  # stops it

    monkeypatch.setattr("serve.shard_replica.list_snapshots", list_snapshots_failing)
    replica = ShardReplica(cfg, 0)
    try:

        def unhealthy() -> bool:
            try:
                replica.check_health()
            except RuntimeError:
                return True
            return False

        wait_until(unhealthy, 30, "a failing health check")
        with pytest.raises(RuntimeError, match="snapshot watcher"):
            replica.check_health()
        assert len(listings) == 3, "storage errors retried, the bug not"
        stopped = [r for r in caplog.records if "snapshot watcher stopped" in r.getMessage()]
        assert stopped and stopped[0].exc_info is not None, "logged with its traceback"
        probe = ShardQuery(np.ones(DIM, np.float32), 5)
        assert len(replica.answer_batch([probe])[0]) == 5, "still serving"
    finally:
        replica.close()
