"""The periodic sealer's loop: outages are retried, a bug stops it and the stack reports it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from conf.config import PinstreamConfig
from jobs import sealer as sealer_module
from jobs.sealer import PeriodicSealer
from jobs.stack import LocalStack
from shards.exceptions import CorruptSnapshot
from tests.waiting import wait_until


def sealing(outcomes: list[Exception | None]) -> tuple[Callable[..., Any], list[int]]:
    """A seal_all that raises each given error in turn (None: a good run), then runs well."""
    calls: list[int] = []

    def seal_all(cfg: PinstreamConfig, compact: bool = False) -> list[dict[str, Any]]:
        calls.append(1)
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is not None:
            raise outcome
        return [{"shard": 0}]

    return seal_all, calls


def test_broker_and_storage_errors_are_retried_at_the_next_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outages = [KafkaTimeoutError("no broker"), OSError("disk"), CorruptSnapshot("bad manifest")]
    seal_all, calls = sealing(list(outages))
    monkeypatch.setattr(sealer_module, "seal_all", seal_all)
    sealer = PeriodicSealer(PinstreamConfig(), interval_s=0.01).start()
    try:
        wait_until(lambda: sealer.runs >= 2, 10, "two good runs after the outages")
    finally:
        sealer.stop()
    assert len(calls) >= 5 and sealer.error is None and sealer.last == [{"shard": 0}]


def test_a_bug_stops_the_sealer_logs_its_traceback_and_the_stack_reports_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bug = TypeError("a bug in the sealer")
    seal_all, calls = sealing([OSError("disk"), bug])
    monkeypatch.setattr(sealer_module, "seal_all", seal_all)
    sealer = PeriodicSealer(PinstreamConfig(), interval_s=0.01).start()
    wait_until(lambda: sealer.error is not None, 10, "the sealer stopped")
    sealer.stop()
    assert sealer.error is bug and len(calls) == 2 and sealer.runs == 0
    stopped = [r for r in caplog.records if "sealer stopped" in r.getMessage()]
    assert stopped and stopped[0].exc_info is not None

    stack = LocalStack(PinstreamConfig())
    stack.sealer = sealer
    with pytest.raises(RuntimeError, match="periodic sealer failed") as raised:
        stack.check_ingest()
    assert raised.value.__cause__ is bug
