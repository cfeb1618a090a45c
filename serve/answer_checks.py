"""Checks of a served answer that run beside the query and never fail it: the shadow
generation's comparison and the online recall sample.

Each runs as a background task of the ingress's event loop once the answer is served. A
shard that did not answer, or a pin the other generation lacks, is an expected miss and
logged in a line; any other error is a bug, logged with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from serve.exceptions import ServeError
from serve.filters import SearchFilter
from serve.generation import Answer, GenerationClient, recall_at_k
from serve.generation_monitor import GenerationMonitor

log = logging.getLogger(__name__)

# One query, runnable on any generation.
Run = Callable[[GenerationClient], Awaitable[Answer]]


class AnswerChecks:
    """Starts the shadow comparison and the recall sample of served answers."""

    def __init__(self, monitor: GenerationMonitor, recall_sample_rate: float) -> None:
        self.monitor = monitor
        self.recall_sample_rate = recall_sample_rate
        self._background: set[asyncio.Task[Any]] = set()

    def shadow(self, shadow: GenerationClient, run: Run, served: Answer) -> None:
        """Run the query on the shadow generation in the background; a generation never
        shadows its own answer."""
        if shadow is not served.client:
            self._spawn(self._shadow(shadow, run, served))

    def sample_recall(self, served: Answer, k: int, keep: SearchFilter) -> None:
        """For a share of answers, compare them with exact search in the background."""
        if random.random() < self.recall_sample_rate:
            self._spawn(self._check_recall(served, k, keep))

    async def _shadow(self, shadow: GenerationClient, run: Run, served: Answer) -> None:
        """Record the shadow's latency and overlap with the served answer; serve nothing."""
        started = time.perf_counter()
        try:
            answer = await run(shadow)
        except Exception as exc:
            self.monitor.shadow_failed(shadow.generation)
            _log_failure(f"shadow {shadow.generation}", exc)
            return
        took_s = time.perf_counter() - started
        self.monitor.shadowed(shadow.generation, took_s, served.hits, answer.hits)

    async def _check_recall(self, served: Answer, k: int, keep: SearchFilter) -> None:
        """Online recall: the served top-k against exact search over the same shards."""
        client = served.client
        try:
            exact, missing = await client.search(served.vector, k, keep, exact=True)
        except Exception as exc:
            _log_failure(f"recall check on {client.generation}", exc)
            return
        if not missing:
            self.monitor.recall(client.generation, recall_at_k(served.hits, exact))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)  # the loop keeps weak references only
        task.add_done_callback(self._background.discard)


def _log_failure(what: str, exc: Exception) -> None:
    if isinstance(exc, ServeError):  # e.g. the pin is not in the shadow generation yet
        log.info("%s failed: %s", what, exc)
    else:
        log.error("%s failed", what, exc_info=exc)
