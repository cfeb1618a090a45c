"""Deployments that fail on purpose, for the ingress's error paths over real Serve."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from serve.shard_query import ShardQuery


class FailingEncoder:
    """A query encoder with a bug: every text fails."""

    async def encode(self, text: str) -> np.ndarray:
        raise RuntimeError(f"secret internals while encoding {text!r}")


class FakeShard:
    """A shard that answers with one fixed pin after `delay_s`; with `dies`, every call kills
    its replica's process (Serve starts another, which dies on its next call); with
    `buggy_get`, get() fails like a bug would."""

    def __init__(
        self, shard: int, delay_s: float = 0.0, dies: bool = False, buggy_get: bool = False
    ) -> None:
        self.shard, self.delay_s, self.dies, self.buggy_get = shard, delay_s, dies, buggy_get

    def _answer(self) -> None:
        if self.dies:
            os._exit(1)  # a lost replica: the caller gets ActorDiedError, or waits for another
        time.sleep(self.delay_s)

    def search(self, query: ShardQuery) -> list[dict[str, Any]]:
        return self.search_batch([query])[0]

    def search_batch(self, queries: list[ShardQuery]) -> list[list[dict[str, Any]]]:
        self._answer()
        hit = {"pin_id": f"from-{self.shard}", "score": 0.5, "title": "t", "board": "b"}
        return [[hit] for _ in queries]

    def get(self, pin_id: str) -> dict[str, Any] | None:
        self._answer()
        if self.buggy_get:
            raise KeyError(f"secret internals of shard {self.shard}")
        return None

    def stats(self) -> dict[str, Any]:
        if self.dies:
            os._exit(1)
        return {"shard": self.shard, "pins": 1}


class UnevenShard(FakeShard):
    """Run as two replicas: the first to start pauses `pause_s` on every `every`-th search and
    leaves a file in `marker_dir` for each pause; the other never pauses."""

    def __init__(self, shard: int, marker_dir: str, pause_s: float, every: int) -> None:
        super().__init__(shard)
        self.marker_dir, self.pause_s, self.every = marker_dir, pause_s, every
        try:
            os.close(os.open(os.path.join(marker_dir, "slow-replica"), os.O_CREAT | os.O_EXCL))
            self.slow = True
        except FileExistsError:
            self.slow = False
        self.calls = 0

    def search_batch(self, queries: list[ShardQuery]) -> list[list[dict[str, Any]]]:
        self.calls += 1
        if self.slow and self.calls % self.every == 0:
            open(os.path.join(self.marker_dir, f"pause-{self.calls}"), "w").close()
            time.sleep(self.pause_s)
        return super().search_batch(queries)
