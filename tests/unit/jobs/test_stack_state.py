"""The run-state file: a client waits for a starting stack, a bounded time, on a fake clock."""

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from conf.config import PinstreamConfig, load_config
from conf.errors import PinstreamError
from jobs.stack_state import (
    READY,
    STARTING,
    read_state,
    running_state,
    state_path,
    write_state,
)

DEAD_PID = 2**22 + 12345  # above the default pid_max: no such process


class FakeClock:
    """time.monotonic and time.sleep that never sleep; `on_sleep` runs at each sleep."""

    def __init__(self, on_sleep: Callable[[float], None] = lambda now: None) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep(self.now)


@pytest.fixture
def cfg(tmp_path: Path) -> PinstreamConfig:
    return load_config().with_value("storage.root", str(tmp_path / "var"))


def state(status: str, pid: int | None = None) -> dict:
    return {"status": status, "pid": os.getpid() if pid is None else pid, "url": "http://x:1"}


def test_a_ready_stack_is_returned_without_waiting(cfg: PinstreamConfig) -> None:
    write_state(cfg, state(READY))
    clock = FakeClock()
    assert running_state(cfg, clock=clock, sleep=clock.sleep)["url"] == "http://x:1"
    assert clock.sleeps == []


def test_a_starting_stack_is_waited_for_until_ready(
    cfg: PinstreamConfig, caplog: pytest.LogCaptureFixture
) -> None:
    write_state(cfg, state(STARTING))

    def becomes_ready(now: float) -> None:
        if now >= 1012.0:
            write_state(cfg, state(READY))

    clock = FakeClock(becomes_ready)
    assert running_state(cfg, wait_s=60, clock=clock, sleep=clock.sleep)["status"] == READY
    assert 1012.0 <= clock.now < 1013.0
    assert sum("waiting up to 60s for the local stack" in m for m in caplog.messages) == 1


def test_a_stack_still_starting_after_the_wait_is_a_clear_error(cfg: PinstreamConfig) -> None:
    write_state(cfg, state(STARTING))
    clock = FakeClock()
    with pytest.raises(PinstreamError, match="still starting after 60s"):
        running_state(cfg, wait_s=60, clock=clock, sleep=clock.sleep)
    assert clock.now == pytest.approx(1060.0)  # waited exactly the bound, not beyond
    assert len(clock.sleeps) < 200


def test_a_stack_that_dies_while_starting_ends_the_wait(cfg: PinstreamConfig) -> None:
    write_state(cfg, state(STARTING))
    clock = FakeClock(lambda now: state_path(cfg).unlink(missing_ok=True))  # stop() removes it
    with pytest.raises(PinstreamError, match="no local stack is running"):
        running_state(cfg, clock=clock, sleep=clock.sleep)
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize("status", [READY, STARTING])
def test_a_killed_stacks_file_is_ignored_at_once(cfg: PinstreamConfig, status: str) -> None:
    write_state(cfg, state(status, pid=DEAD_PID))
    clock = FakeClock()
    with pytest.raises(PinstreamError, match="no local stack is running"):
        running_state(cfg, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_no_file_is_no_stack(cfg: PinstreamConfig) -> None:
    clock = FakeClock()
    with pytest.raises(PinstreamError, match="no local stack is running"):
        running_state(cfg, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_the_file_is_replaced_whole(cfg: PinstreamConfig) -> None:
    write_state(cfg, state(STARTING))
    write_state(cfg, state(READY))
    assert read_state(cfg) == state(READY)
    assert json.loads(state_path(cfg).read_text())["status"] == READY
    assert [p.name for p in state_path(cfg).parent.iterdir()] == ["stack.json"]
