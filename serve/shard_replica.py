"""One shard replica: tails its embeddings-log partition into a ShardState and answers searches.

Plain class (no Serve decorator) so tests drive it directly; `serve/app.py` runs
it as one Serve deployment per shard. The constructor returns (and Serve routes
requests to the replica) only once the replica has caught up with its partition.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import pyarrow as pa
from kafka import TopicPartition

from conf.config import PinstreamConfig
from serve.exceptions import ShardNotReady
from serve.filters import SearchFilter, search_state
from serve.freshness import FreshnessTracker
from serve.readiness import CatchUp
from shards.shard_index import ShardConfig
from shards.shard_state import ShardState
from streams.embeddings_log import decode_rows, log_schema
from streams.kafka_io import assigned_consumer

log = logging.getLogger(__name__)


class ShardReplica:
    """Applies its partition of the log in a background thread; searches any time."""

    def __init__(self, cfg: PinstreamConfig, shard: int, poll_timeout_ms: int = 100) -> None:
        if cfg.broker.is_local:
            raise ValueError("ShardReplica needs a resolved bootstrap address, not 'local'")
        self.cfg = cfg
        self.shard = shard
        self.state = ShardState(ShardConfig(dim=cfg.shards.dim, metric=cfg.shards.metric))
        self._schema = log_schema(cfg.shards.dim)
        self.freshness = FreshnessTracker(shard)
        self._next_offset = 0
        self._bad_records = 0
        self._last_applied_ms = 0
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._end_offset: int | None = None
        self._tail = threading.Thread(
            target=self._tail_log, args=(poll_timeout_ms,), name=f"shard-{shard}-tail", daemon=True
        )
        self._tail.start()
        self._wait_until_caught_up()

    def _wait_until_caught_up(self) -> None:
        settings = self.cfg.serve
        started = time.monotonic()
        deadline = started + settings.shard_ready_timeout_s
        while not self._ready.wait(timeout=0.05):
            if not self._tail.is_alive():
                raise ShardNotReady(f"shard {self.shard}: log tail stopped while catching up")
            if time.monotonic() > deadline:
                self.close()
                raise ShardNotReady(
                    f"shard {self.shard}: not caught up with its log after "
                    f"{settings.shard_ready_timeout_s}s (at offset {self._next_offset}, "
                    f"broker end {self._end_offset})"
                )
        log.info(
            "shard %d: caught up at offset %d (%d pins) in %.1fs",
            self.shard,
            self._next_offset,
            len(self.state),
            time.monotonic() - started,
        )

    def _tail_log(self, poll_timeout_ms: int) -> None:
        tp = TopicPartition(self.cfg.topics.embeddings, self.shard)
        settings = self.cfg.serve
        with assigned_consumer(self.cfg.broker.bootstrap) as consumer:
            consumer.assign([tp])
            consumer.seek(tp, self._next_offset)
            catch_up = CatchUp(
                lambda: int(consumer.end_offsets([tp])[tp]),
                settings.shard_ready_max_lag,
                settings.shard_ready_idle_s,
            )
            while not self._stopping.is_set():
                records = consumer.poll(timeout_ms=poll_timeout_ms).get(tp, [])
                for record in records:
                    self.apply_record(record.value, record.offset)
                if not self._ready.is_set():
                    ready = catch_up.after_poll(self._next_offset, bool(records))
                    self._end_offset = catch_up.end
                    if ready:
                        self._ready.set()

    def apply_record(self, value: bytes, offset: int) -> None:
        """Apply one log record; a corrupt or foreign one is counted and skipped, never applied."""
        try:
            rows = decode_rows(value)
            if not rows.schema.equals(self._schema):
                raise ValueError(f"not the embeddings-log schema: {rows.schema}")
            self.state.apply_rows(rows)
        except (pa.ArrowInvalid, ValueError) as exc:
            self._bad_records += 1
            log.error("shard %d: bad log record at offset %d skipped: %s", self.shard, offset, exc)
        else:
            now_ms = int(time.time() * 1000)
            self.freshness.observe(rows.column("event_time").to_pylist(), now_ms)
            self._last_applied_ms = now_ms
        self._next_offset = offset + 1

    def search(
        self, vectors: np.ndarray, k: int, keep: SearchFilter | None = None
    ) -> list[list[dict[str, Any]]]:
        """Top-k per query vector, best first; with a filter, the top-k that pass it."""
        return search_state(self.state, vectors, k, keep)

    def get(self, pin_id: str) -> dict[str, Any] | None:
        """The indexed pin with its vector, or None."""
        return self.state.get(pin_id)

    def stats(self) -> dict[str, Any]:
        """Size and log position, for /healthz and for waiting until pins are searchable."""
        return {
            "shard": self.shard,
            "pins": len(self.state),
            "log_offset": self._next_offset,
            "bad_records": self._bad_records,
            "last_applied_ms": self._last_applied_ms,
            "tailing": self._tail.is_alive(),
            "freshness": self.freshness.percentiles(),
        }

    def check_health(self) -> None:
        """Serve calls this: a replica whose log tail died is replaced."""
        if not self._tail.is_alive() and not self._stopping.is_set():
            raise RuntimeError(f"shard {self.shard}: log tail thread stopped")

    def close(self) -> None:
        self._stopping.set()
        self._tail.join(timeout=5)
