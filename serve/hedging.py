"""Hedged shard requests: a search that has not answered by the shard's usual tail latency is
sent again, to another replica, and the first answer wins.

One slow replica (a long GC pause, a snapshot swap, a noisy neighbour) would otherwise set the
latency of every query that fans out to it. Serve's router sends the second call to the
replica with fewer requests in flight, which is the other one while the first call is stuck.
Only searches are hedged: they read, so running one twice changes nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

# Latencies kept per shard: enough for a stable p95, recent enough to follow the load.
WINDOW = 256
# At most this share of a shard's recent calls is hedged. When the whole shard slows down
# (overload, not one slow replica), every call passes its p95 for a while: hedging them all
# would double the load on a shard that is already behind.
MAX_HEDGED_SHARE = 0.1


class LatencyWindow:
    """The most recent call latencies of one shard, their quantiles, and how many of those
    calls were hedged."""

    def __init__(self, size: int = WINDOW) -> None:
        self._seconds: deque[float] = deque(maxlen=size)
        self._hedged: deque[bool] = deque(maxlen=size)
        self._hedges = 0  # True entries of _hedged, kept as calls come and go (a hot path)

    def observe(self, seconds: float, hedged: bool = False) -> None:
        if len(self._hedged) == self._hedged.maxlen:
            self._hedges -= self._hedged[0]  # the call the append pushes out
        self._seconds.append(seconds)
        self._hedged.append(hedged)
        self._hedges += hedged

    def may_hedge(self, max_share: float = MAX_HEDGED_SHARE) -> bool:
        """Whether one more hedge keeps the hedged share of recent calls within max_share."""
        return self._hedges < max_share * max(len(self._hedged), 1)

    def quantile(self, q: float, min_samples: int) -> float | None:
        """The q-quantile of the kept latencies; None with fewer than min_samples."""
        if len(self._seconds) < min_samples:
            return None
        return float(np.quantile(np.fromiter(self._seconds, dtype=np.float64), q))


async def first_answer(
    start: Callable[[], Any], hedge_after_s: float | None, hedged: Callable[[], None]
) -> Any:
    """The result of `start()` (a Serve DeploymentResponse, or any awaitable with `cancel()`);
    if it has not answered within hedge_after_s, `start()` again (calling `hedged`) and return
    the first result that is not an error. The call still running is cancelled. When every
    call fails, the first call's error is raised."""
    first = start()
    if hedge_after_s is None:
        return await first
    calls = {asyncio.ensure_future(_awaited(first)): first}
    try:
        done, _ = await asyncio.wait(calls, timeout=hedge_after_s)
        if not done:
            hedged()
            second = start()
            calls[asyncio.ensure_future(_awaited(second))] = second
        return await _first_success(list(calls))
    finally:
        for task, response in calls.items():
            if not task.done():
                task.cancel()
                response.cancel()


async def _first_success(tasks: list[asyncio.Future[Any]]) -> Any:
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is None:
                return task.result()
    return tasks[0].result()  # every call failed: the first one's error


async def _awaited(response: Awaitable[Any]) -> Any:
    return await response
