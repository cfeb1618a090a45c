"""first_answer: the hedge fires only after the wait, the first good answer wins, the loser
is cancelled, and errors are raised only when every call failed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from serve.hedging import LatencyWindow, first_answer


class Response:
    """An awaitable like Serve's DeploymentResponse: answers `value` after `delay_s`."""

    def __init__(self, delay_s: float, value: Any = None, error: Exception | None = None) -> None:
        self.delay_s, self.value, self.error = delay_s, value, error
        self.cancelled = False

    def __await__(self) -> Any:
        return self._run().__await__()

    async def _run(self) -> Any:
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return self.value

    def cancel(self) -> None:
        self.cancelled = True


def run(responses: list[Response], hedge_after_s: float | None) -> tuple[Any, int, int]:
    """first_answer over `responses` in order; its result, the calls started, hedges counted."""
    started, hedges = [], []

    def start() -> Response:
        started.append(responses[len(started)])
        return started[-1]

    result = asyncio.run(first_answer(start, hedge_after_s, lambda: hedges.append(1)))
    return result, len(started), len(hedges)


def test_an_answer_within_the_wait_is_not_hedged() -> None:
    assert run([Response(0.0, "a"), Response(0.0, "b")], 0.5) == ("a", 1, 0)
    assert run([Response(0.05, "a")], None) == ("a", 1, 0)


def test_a_slow_call_is_hedged_the_faster_second_wins_and_the_first_is_cancelled() -> None:
    slow, fast = Response(2.0, "slow"), Response(0.0, "fast")
    assert run([slow, fast], 0.05) == ("fast", 2, 1)
    assert slow.cancelled and not fast.cancelled


def test_a_failed_second_call_leaves_the_first_to_answer() -> None:
    first, failing = Response(0.2, "first"), Response(0.0, error=RuntimeError("lost"))
    assert run([first, failing], 0.05) == ("first", 2, 1)


def test_when_every_call_fails_the_first_calls_error_is_raised() -> None:
    responses = [Response(0.1, error=KeyError("one")), Response(0.0, error=KeyError("two"))]
    with pytest.raises(KeyError, match="one"):
        run(responses, 0.05)


def test_latency_quantile_needs_enough_samples() -> None:
    window = LatencyWindow(size=100)
    for i in range(19):
        window.observe(i / 100)
    assert window.quantile(0.95, min_samples=20) is None
    window.observe(0.19)
    assert window.quantile(0.95, min_samples=20) == pytest.approx(0.1805)
    for _ in range(100):
        window.observe(1.0)  # only the newest 100 are kept
    assert window.quantile(0.5, min_samples=20) == 1.0


def test_at_most_a_tenth_of_recent_calls_are_hedged() -> None:
    window = LatencyWindow(size=100)
    for _ in range(50):
        window.observe(0.01)
    assert window.may_hedge()
    for _ in range(5):
        window.observe(0.5, hedged=True)
    assert window.may_hedge()  # 5 of 55
    window.observe(0.5, hedged=True)
    assert not window.may_hedge()  # 6 of 56: one more would pass 10 %
    for _ in range(100):
        window.observe(0.01)  # the hedged calls age out of the window
    assert window.may_hedge()
