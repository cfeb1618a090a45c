"""FanOutBatcher: the submissions of one event-loop pass go out as one batch, a lone one at
once; one that arrives while a batch is in flight waits for it to return (max_wait_s at
most); batches are split at max_batch_size and run side by side; an error of a batch reaches
its callers only."""

from __future__ import annotations

import asyncio

import pytest

from serve.fan_out_batcher import FanOutBatcher


class Recorder:
    """An async batch function that takes `seconds` and records the batches it was given."""

    def __init__(self, seconds: float = 0.0, fail_on: int | None = None) -> None:
        self.seconds, self.fail_on = seconds, fail_on
        self.batches: list[list[int]] = []
        self.running = 0
        self.most_running = 0

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await asyncio.sleep(self.seconds)
        self.running -= 1
        if self.fail_on in items:
            raise KeyError(f"item {self.fail_on}")
        return [item * 10 for item in items]


def test_submissions_of_one_loop_pass_go_out_as_one_batch_each_with_its_own_result() -> None:
    record = Recorder()
    batcher = FanOutBatcher(record, max_batch_size=64, max_wait_s=1.0)

    async def main() -> list[int]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(20)))

    assert asyncio.run(main()) == [i * 10 for i in range(20)]
    assert record.batches == [list(range(20))]


def test_a_lone_submission_at_an_idle_batcher_is_sent_at_once_and_alone() -> None:
    record = Recorder(seconds=0.05)
    batcher = FanOutBatcher(record, max_batch_size=64, max_wait_s=1.0)

    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        return await batcher.submit(1), loop.time() - started

    result, took_s = asyncio.run(main())
    assert result == 10
    assert record.batches == [[1]]
    assert took_s < 0.5, "it did not wait for company"


def test_submissions_during_a_batch_in_flight_go_together_when_it_returns() -> None:
    record = Recorder(seconds=0.05)
    batcher = FanOutBatcher(record, max_batch_size=64, max_wait_s=1.0)

    async def main() -> tuple[list[int], float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.01)  # the first is on its way
        later = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]
        await asyncio.sleep(0.01)
        later.append(asyncio.ensure_future(batcher.submit(4)))
        results = await asyncio.gather(first, *later)
        return results, loop.time() - started

    results, took_s = asyncio.run(main())
    assert results == [10, 20, 30, 40]
    assert record.batches == [[1], [2, 3, 4]]
    assert record.most_running == 1
    assert took_s < 0.5, "the waiting ones went when the first returned, not at max_wait_s"


def test_a_batch_that_does_not_return_holds_the_next_back_max_wait_s_at_most() -> None:
    record = Recorder(seconds=1.0)
    batcher = FanOutBatcher(record, max_batch_size=64, max_wait_s=0.05)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        stuck = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.01)
        started = loop.time()
        second = asyncio.ensure_future(batcher.submit(2))
        while len(record.batches) < 2:
            await asyncio.sleep(0.005)
        sent_after = loop.time() - started
        await asyncio.gather(stuck, second)
        return sent_after

    sent_after = asyncio.run(main())
    assert record.batches == [[1], [2]]
    assert record.most_running == 2, "the second went beside the stuck one"
    assert 0.04 <= sent_after < 0.5


def test_batches_are_split_at_max_batch_size_and_run_side_by_side() -> None:
    record = Recorder(seconds=0.02)
    batcher = FanOutBatcher(record, max_batch_size=8, max_wait_s=1.0)

    async def main() -> list[int]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(20)))

    assert asyncio.run(main()) == [i * 10 for i in range(20)]
    assert record.batches == [list(range(0, 8)), list(range(8, 16)), list(range(16, 20))]
    assert record.most_running == 3


def test_an_error_reaches_the_callers_of_its_batch_only() -> None:
    record = Recorder(fail_on=3)
    batcher = FanOutBatcher(record, max_batch_size=4, max_wait_s=1.0)

    async def main() -> list[int | BaseException]:
        calls = [batcher.submit(i) for i in range(8)]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(outcome, KeyError) for outcome in outcomes[:4])
    assert outcomes[4:] == [40, 50, 60, 70]


def test_a_cancelled_caller_is_left_out_of_its_batch() -> None:
    record = Recorder()
    batcher = FanOutBatcher(record, max_batch_size=64, max_wait_s=1.0)

    async def main() -> int:
        gone = asyncio.ensure_future(batcher.submit(1))
        kept = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0)  # both are queued
        gone.cancel()
        return await kept

    assert asyncio.run(main()) == 20
    assert record.batches == [[2]]


@pytest.mark.parametrize(("size", "wait_s"), [(0, 0.01), (8, -0.01)])
def test_a_batch_size_below_one_or_a_negative_wait_is_refused(size: int, wait_s: float) -> None:
    with pytest.raises(ValueError, match="max_batch_size >= 1, max_wait_s >= 0"):
        FanOutBatcher(Recorder(), max_batch_size=size, max_wait_s=wait_s)
