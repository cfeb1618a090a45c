"""MicroBatcher: batches form from what queued while the previous batch ran; each caller
gets its own result; an error of a batch reaches its callers only."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from serve.micro_batcher import MicroBatcher


class Recorder:
    """A batch function that takes `seconds` and records the batches it was given."""

    def __init__(self, seconds: float = 0.0, fail_on: int | None = None) -> None:
        self.seconds, self.fail_on = seconds, fail_on
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        if self.fail_on in items:
            raise KeyError(f"item {self.fail_on}")
        return [item * 10 for item in items]


def run_concurrently(
    batcher: MicroBatcher[int, int], items: list[int]
) -> list[int | BaseException]:
    async def main() -> list[int | BaseException]:
        return await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)

    return asyncio.run(main())


def test_requests_arriving_while_a_batch_runs_form_the_next_batch() -> None:
    record = Recorder(seconds=0.05)
    batcher = MicroBatcher(record, max_batch_size=16, max_wait_s=0.0)

    async def main() -> list[int]:
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.01)  # the first batch (of one) is running now
        rest = [batcher.submit(i) for i in range(1, 21)]
        return [await first, *await asyncio.gather(*rest)]

    assert asyncio.run(main()) == [i * 10 for i in range(21)]
    assert [len(batch) for batch in record.batches] == [1, 16, 4]  # capped, then the rest
    assert "MainThread" not in record.threads, "the batch runs off the event loop"


def test_a_list_submitted_at_once_is_searched_with_what_queues_beside_it_in_order() -> None:
    record = Recorder(seconds=0.05)
    batcher = MicroBatcher(record, max_batch_size=16, max_wait_s=0.0)

    async def main() -> tuple[int, list[int], int]:
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.01)  # the first batch (of one) is running now
        listed = batcher.submit_many([5, 6, 7])
        single = batcher.submit(8)
        return await first, *await asyncio.gather(listed, single)

    assert asyncio.run(main()) == (0, [50, 60, 70], 80)
    assert record.batches == [[0], [5, 6, 7, 8]]


def test_a_lone_request_waits_at_most_the_max_wait() -> None:
    batcher = MicroBatcher(Recorder(), max_batch_size=8, max_wait_s=0.05)
    started = time.perf_counter()
    assert run_concurrently(batcher, [3]) == [30]
    assert time.perf_counter() - started < 0.5


def test_an_error_of_a_batch_reaches_its_callers_and_the_batcher_goes_on() -> None:
    record = Recorder(fail_on=2)
    batcher = MicroBatcher(record, max_batch_size=4, max_wait_s=0.01)
    results = run_concurrently(batcher, [1, 2, 3, 4, 5, 6])
    failed = [r for r in results if isinstance(r, KeyError)]
    assert len(failed) == len(record.batches[0]) and 2 in record.batches[0]
    assert [r for r in results if not isinstance(r, BaseException)] == [
        i * 10 for batch in record.batches[1:] for i in batch
    ]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch_size >= 1"):
        MicroBatcher(Recorder(), max_batch_size=0, max_wait_s=0.0)
