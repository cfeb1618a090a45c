"""Cross-request batching at the ingress: the single searches of one generation that reach the
ingress close together go to its shards as one call per shard.

Each query that fans out costs one Serve request per shard: routing, gRPC and pickling at the
ingress, and a request handled at every shard replica, whatever the search itself costs.
Measured on 2 cores, those requests took more CPU than the searches. So a query that arrives
while no batch of its generation is in flight is sent at the end of the event-loop pass it
arrived in, with whatever else arrived in that pass: an idle ingress sends each query alone, at
once. A query that arrives while a batch is in flight waits for that batch to come back, or
for `max_wait_s`, whichever is first, and goes with every query that waited with it. Under
load the queries of one round trip to the shards travel together; a slow or stuck batch holds
the next one back `max_wait_s` at most, and then batches go out side by side: the calls in
flight grow as the shards slow down, and that queue is what Serve's autoscaling of a shard
counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic

from serve.micro_batcher import Item, Result, answer_each


class FanOutBatcher(Generic[Item, Result]):
    """Gathers `submit` calls into lists for `run_batch` (at most `max_batch_size` each): those
    of one loop pass when nothing is in flight, else those that arrive until a batch in flight
    returns or the first of them has waited `max_wait_s`. Each caller gets its own result, or
    the error of its batch."""

    def __init__(
        self,
        run_batch: Callable[[list[Item]], Awaitable[list[Result]]],
        max_batch_size: int,
        max_wait_s: float,
    ) -> None:
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError(
                f"max_batch_size >= 1, max_wait_s >= 0; got {max_batch_size}, {max_wait_s}"
            )
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._send_scheduled: asyncio.Handle | None = None
        self._running: set[asyncio.Task[None]] = set()  # kept referenced until done

    async def submit(self, item: Item) -> Result:
        """The result of `item`, sent with the items that arrive beside it."""
        loop = asyncio.get_running_loop()
        if self._send_scheduled is None:
            if self._running:  # wait for the batch in flight, max_wait_s at most
                self._send_scheduled = loop.call_later(self.max_wait_s, self._send_pending)
            else:  # after the callbacks ready in this pass
                self._send_scheduled = loop.call_soon(self._send_pending)
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        return await future

    def _send_pending(self) -> None:
        if self._send_scheduled is not None:
            self._send_scheduled.cancel()  # when a returning batch sends before the wait ends
            self._send_scheduled = None
        pending, self._pending = self._pending, []
        waiting = [(item, future) for item, future in pending if not future.cancelled()]
        for first in range(0, len(waiting), self.max_batch_size):
            task = asyncio.get_running_loop().create_task(
                self._run(waiting[first : first + self.max_batch_size])
            )
            self._running.add(task)
            task.add_done_callback(self._batch_returned)

    def _batch_returned(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._pending:
            self._send_pending()

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        await answer_each(batch, self.run_batch([item for item, _ in batch]))
