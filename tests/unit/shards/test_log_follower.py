"""LogFollower: a record no shard may apply becomes a dead letter with its offset and reason;
a failure while applying good rows is a bug, raised with the follower left on the record."""

from __future__ import annotations

import numpy as np
import pytest

from conf.config import ShardsConfig
from shards.log_follower import LogFollower
from shards.shard_state import ShardState
from streams.embeddings_log import encode_rows, upsert_rows
from streams.synthetic import PinGenerator

DIM = 8


def record(generation: str = "g1", count: int = 3, start: int = 0, version: int = 1) -> bytes:
    events = [p.event for p in PinGenerator(seed=3).pins(count, start=start)]
    vectors = np.random.default_rng(start).standard_normal((count, DIM)).astype(np.float32)
    return encode_rows(upsert_rows(events, vectors, version, generation))


def follower(keep: int | None = 100) -> LogFollower:
    state = ShardState(ShardsConfig(dim=DIM, sealed_index="Flat"))
    return LogFollower(state, "pin-embeddings", 0, "g1", keep_dead_letters=keep)


def test_good_records_apply_and_bad_ones_become_dead_letters() -> None:
    fold = follower()
    assert fold.apply(record(), 0) is not None
    assert fold.apply(b"\x00 not arrow", 1, key=b"k") is None
    assert fold.apply(record(generation="other"), 2) is None
    assert fold.apply(record(start=3), 3) is not None
    assert fold.next_offset == 4
    assert len(fold.state) == 6
    assert fold.bad_records == 2
    (garbage, foreign) = fold.dead_letters
    assert (garbage.offset, garbage.key, garbage.value) == (1, b"k", b"\x00 not arrow")
    assert (garbage.topic, garbage.partition) == ("pin-embeddings", 0)
    assert "truncated" in garbage.reason or "corrupt" in garbage.reason
    assert foreign.offset == 2 and "generation ['other']" in foreign.reason


def test_a_bug_while_applying_raises_and_skips_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    fold = follower()

    def broken(rows: object) -> None:
        raise TypeError("a bug in the shard state")

    monkeypatch.setattr(fold.state, "apply_rows", broken)
    with pytest.raises(TypeError, match="a bug"):
        fold.apply(record(), 5)
    assert fold.next_offset == 0  # still on the record: nothing was counted as bad data
    assert fold.bad_records == 0 and not fold.dead_letters


def test_a_replica_keeps_the_newest_dead_letters_only_and_carries_them_over() -> None:
    earlier, later = follower(keep=3), follower(keep=3)
    for offset in range(4):
        earlier.apply(b"bad", offset)
    later.apply(b"bad", 10)
    later.carry_over(earlier)
    assert later.bad_records == 5
    assert [letter.offset for letter in later.dead_letters] == [2, 3, 10]
