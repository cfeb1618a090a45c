"""Cross-request batching in a replica: concurrent requests run as one call (a shard replica's
searches, the query encoder's texts and images).

Why not `@serve.batch`: since Ray 2.4x its queue forms the next batch as soon as the first
request of it arrives (plus the wait), and only then waits for the running batch to finish
(`max_concurrent_batches`). A handler that searches in a worker thread leaves the event loop
free, so the next batch is formed, small, while the previous one is still searching: measured
here, a 20 ms handler at 32 concurrent requests formed batches of 1.4. This batcher forms a
batch only once the previous one is done, from every request that arrived meanwhile, so a
loaded replica searches in batches as large as its load allows (up to `max_batch_size`); an
idle one waits at most `max_wait_s` for company.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


async def answer_each(
    batch: Sequence[tuple[Item, asyncio.Future[Result]]], results: Awaitable[list[Result]]
) -> None:
    """Hand each caller of `batch` its own of `results`, in order. An error of the batch goes
    to every caller of it; cancelled (the loop is closing), it cancels them, and so is raised."""
    try:
        found = await results
    except asyncio.CancelledError:
        for _, future in batch:
            future.cancel()
        raise
    except Exception as exc:  # a bug in the batch: every caller of it gets the error
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)
        return
    for (_, future), result in zip(batch, found, strict=True):
        if not future.done():
            future.set_result(result)


class MicroBatcher(Generic[Item, Result]):
    """Gathers concurrent `submit` calls into lists for `run_batch` (run in a worker thread,
    one batch at a time); each caller gets its own result, or the batch's error."""

    def __init__(
        self,
        run_batch: Callable[[list[Item]], list[Result]],
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
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Result]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """The result of `item`, searched with whatever else arrives meanwhile."""
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: list[Item]) -> list[Result]:
        """The result of each item, in order; the items join the queue together, so that a
        batch of them is searched with whatever else arrives (split where it passes
        max_batch_size)."""
        if self._queue is None or self._worker is None or self._worker.done():
            # Made on first use, on the loop that serves requests (not the constructor's).
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run(self._queue))
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Result]] = [loop.create_future() for _ in items]
        for item, future in zip(items, futures, strict=True):
            self._queue.put_nowait((item, future))
        return list(await asyncio.gather(*futures))

    async def _run(self, queue: asyncio.Queue[tuple[Item, asyncio.Future[Result]]]) -> None:
        while True:
            batch = await self._next_batch(queue)
            waiting = [(item, future) for item, future in batch if not future.cancelled()]
            if waiting:
                items = [item for item, _ in waiting]
                await answer_each(waiting, asyncio.to_thread(self.run_batch, items))

    async def _next_batch(
        self, queue: asyncio.Queue[tuple[Item, asyncio.Future[Result]]]
    ) -> list[tuple[Item, asyncio.Future[Result]]]:
        """Everything queued (up to max_batch_size); with less, wait up to max_wait_s more."""
        batch = [await queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch
