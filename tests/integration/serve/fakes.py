"""Deployments that fail on purpose, for the ingress's error paths over real Serve."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from serve.filters import SearchFilter


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

    def search(
        self, vectors: np.ndarray, k: int, keep: SearchFilter | None = None, exact: bool = False
    ) -> list[list[dict[str, Any]]]:
        self._answer()
        hit = {"pin_id": f"from-{self.shard}", "score": 0.5, "title": "t", "board": "b"}
        return [[hit] for _ in np.atleast_2d(vectors)]

    def get(self, pin_id: str) -> dict[str, Any] | None:
        self._answer()
        if self.buggy_get:
            raise KeyError(f"secret internals of shard {self.shard}")
        return None

    def stats(self) -> dict[str, Any]:
        if self.dies:
            os._exit(1)
        return {"shard": self.shard, "pins": 1}
