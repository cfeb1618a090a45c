"""One shard replica: tails its embeddings-log partition into a FAISS index and answers searches.

Plain class (no Serve decorator) so tests drive it directly; `serve/app.py` runs
it as one Serve deployment per shard.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from kafka import TopicPartition

from conf.config import PinstreamConfig
from shards import ShardConfig, ShardIndex, pin_key, pin_keys
from streams.embeddings_log import decode_rows, vectors_of
from streams.kafka_io import assigned_consumer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinInfo:
    """What the API returns about an indexed pin besides its score."""

    pin_id: str
    title: str
    board: str
    version: int


class ShardReplica:
    """Applies the log (last-writer-wins by version) in a background thread; searches any time."""

    def __init__(self, cfg: PinstreamConfig, shard: int, poll_timeout_ms: int = 100) -> None:
        if cfg.broker.is_local:
            raise ValueError("ShardReplica needs a resolved bootstrap address, not 'local'")
        self.cfg = cfg
        self.shard = shard
        self.index = ShardIndex(ShardConfig(dim=cfg.shards.dim, metric=cfg.shards.metric))
        self._pins: dict[int, PinInfo] = {}
        self._lock = threading.RLock()
        self._next_offset = 0
        self._bad_records = 0
        self._last_applied_ms = 0
        self._stopping = threading.Event()
        self._tail = threading.Thread(
            target=self._tail_log, args=(poll_timeout_ms,), name=f"shard-{shard}-tail", daemon=True
        )
        self._tail.start()

    # -- the log -------------------------------------------------------------------------------

    def _tail_log(self, poll_timeout_ms: int) -> None:
        tp = TopicPartition(self.cfg.topics.embeddings, self.shard)
        with assigned_consumer(self.cfg.broker.bootstrap) as consumer:
            consumer.assign([tp])
            consumer.seek(tp, self._next_offset)
            while not self._stopping.is_set():
                for record in consumer.poll(timeout_ms=poll_timeout_ms).get(tp, []):
                    self.apply_record(record.value, record.offset)

    def apply_record(self, value: bytes, offset: int) -> None:
        """Apply one embeddings-log record; a corrupt one is counted and skipped, never applied."""
        try:
            rows = decode_rows(value)
        except (pa.ArrowInvalid, OSError) as exc:
            self._bad_records += 1
            log.error("shard %d: corrupt log record at offset %d skipped: %s", self.shard, offset, exc)
        else:
            self.apply_rows(rows)
        self._next_offset = offset + 1

    def apply_rows(self, rows: pa.Table) -> None:
        """Apply log rows; replays and out-of-order duplicates change nothing."""
        ops = np.array(rows.column("op").to_pylist())
        pin_ids = rows.column("pin_id").to_pylist()
        keys = pin_keys(pin_ids)
        versions = rows.column("version").to_numpy()
        upserts = ops == "upsert"
        with self._lock:
            if upserts.any():
                upsert_rows = rows.filter(pa.array(upserts))
                self.index.upsert(
                    keys[upserts], vectors_of(upsert_rows, self.cfg.shards.dim), versions[upserts]
                )
            if (~upserts).any():
                self.index.delete(keys[~upserts], versions[~upserts])
            titles = rows.column("title").to_pylist()
            boards = rows.column("board").to_pylist()
            for i, key in enumerate(keys.tolist()):
                if self.index.version(key) != versions[i]:
                    continue  # superseded by a newer event of the same pin
                if upserts[i]:
                    self._pins[key] = PinInfo(pin_ids[i], titles[i], boards[i], int(versions[i]))
                else:
                    self._pins.pop(key, None)
        self._last_applied_ms = int(time.time() * 1000)

    # -- queries -------------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        """Top-k per query vector, best first: dicts with pin_id, score, title, board."""
        queries = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        with self._lock:
            scores, keys = self.index.search(queries, k)
            return [
                [
                    {
                        "pin_id": self._pins[key].pin_id,
                        "score": float(score),
                        "title": self._pins[key].title,
                        "board": self._pins[key].board,
                    }
                    for score, key in zip(row_scores.tolist(), row_keys.tolist(), strict=True)
                    if key >= 0
                ]
                for row_scores, row_keys in zip(scores, keys, strict=True)
            ]

    def get(self, pin_id: str) -> dict[str, Any] | None:
        """The indexed pin with its vector, or None when it is not (or no longer) indexed."""
        key = pin_key(pin_id)
        with self._lock:
            info = self._pins.get(key)
            vector = self.index.vector(key)
            if info is None or vector is None:
                return None
            return {
                "pin_id": info.pin_id,
                "title": info.title,
                "board": info.board,
                "version": info.version,
                "vector": vector,
            }

    def stats(self) -> dict[str, Any]:
        """Size and log position, for /healthz and for waiting until pins are searchable."""
        return {
            "shard": self.shard,
            "pins": len(self.index),
            "log_offset": self._next_offset,
            "bad_records": self._bad_records,
            "last_applied_ms": self._last_applied_ms,
            "tailing": self._tail.is_alive(),
        }

    def check_health(self) -> None:
        """Serve calls this: a replica whose log tail died is replaced."""
        if not self._tail.is_alive() and not self._stopping.is_set():
            raise RuntimeError(f"shard {self.shard}: log tail thread stopped")

    def close(self) -> None:
        self._stopping.set()
        self._tail.join(timeout=5)
