"""Test helper: hold sealed-index builds to observe a shard while a seal or compaction runs."""

import threading
from typing import Any

import pytest

import shards.segments

DEADLINE_S = 30.0


class BlockedBuilds:
    """Holds every sealed-index build until `release` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        build = shards.segments.build_index

        def blocked(*args: Any) -> Any:
            self.started.set()
            assert self.release.wait(DEADLINE_S), "build never released"
            return build(*args)

        monkeypatch.setattr(shards.segments, "build_index", blocked)
