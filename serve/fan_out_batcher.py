"""Cross-request batching at the ingress: the single searches of one generation that reach the
ingress together go to its shards as one call per shard.

Each query that fans out costs one Serve request per shard: routing, gRPC and pickling at the
ingress, and a request handled at every shard replica, whatever the search itself costs.
Measured on 2 cores, those requests took more CPU than the searches. This batcher holds no
query back: a query is sent at the end of the event-loop pass it arrived in, with every other
query of the same generation that arrived in that pass. An idle ingress sends each query alone,
as soon as it arrives; a loaded one, whose passes each advance many requests, sends them
together. Nothing caps the calls in flight, so a shard that falls behind sees its requests
queue, which is what Serve's autoscaling of the shard counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic

from serve.micro_batcher import Item, Result, answer_each


class FanOutBatcher(Generic[Item, Result]):
    """Gathers the `submit` calls of one event-loop pass into lists for `run_batch` (at most
    `max_batch_size` each, all started at once); each caller gets its own result, or the
    error of its batch."""

    def __init__(
        self, run_batch: Callable[[list[Item]], Awaitable[list[Result]]], max_batch_size: int
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._running: set[asyncio.Task[None]] = set()  # kept referenced until done

    async def submit(self, item: Item) -> Result:
        """The result of `item`, sent with the items submitted in the same loop pass."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._send_pending)  # after the callbacks ready in this pass
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        return await future

    def _send_pending(self) -> None:
        pending, self._pending = self._pending, []
        waiting = [(item, future) for item, future in pending if not future.cancelled()]
        for first in range(0, len(waiting), self.max_batch_size):
            task = asyncio.get_running_loop().create_task(
                self._run(waiting[first : first + self.max_batch_size])
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        await answer_each(batch, self.run_batch([item for item, _ in batch]))
