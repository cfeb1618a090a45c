"""FanOutBatcher: the submissions of one event-loop pass go out as one batch, a lone one at
once; batches are split at max_batch_size and run side by side; an error of a batch reaches
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
    batcher = FanOutBatcher(record, max_batch_size=64)

    async def main() -> list[int]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(20)))

    assert asyncio.run(main()) == [i * 10 for i in range(20)]
    assert record.batches == [list(range(20))]


def test_a_lone_submission_is_sent_at_once_and_alone() -> None:
    record = Recorder(seconds=0.05)
    batcher = FanOutBatcher(record, max_batch_size=64)

    async def main() -> tuple[int, int, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.01)  # the first is on its way: the next one does not wait for it
        second = await batcher.submit(2)
        return await first, second, loop.time() - started

    first, second, took_s = asyncio.run(main())
    assert (first, second) == (10, 20)
    assert record.batches == [[1], [2]]
    assert record.most_running == 2, "nothing caps the calls in flight"
    assert took_s < 0.1, "the second call ran beside the first, not after it"


def test_batches_are_split_at_max_batch_size_and_run_side_by_side() -> None:
    record = Recorder(seconds=0.02)
    batcher = FanOutBatcher(record, max_batch_size=8)

    async def main() -> list[int]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(20)))

    assert asyncio.run(main()) == [i * 10 for i in range(20)]
    assert record.batches == [list(range(0, 8)), list(range(8, 16)), list(range(16, 20))]
    assert record.most_running == 3


def test_an_error_reaches_the_callers_of_its_batch_only() -> None:
    record = Recorder(fail_on=3)
    batcher = FanOutBatcher(record, max_batch_size=4)

    async def main() -> list[int | BaseException]:
        calls = [batcher.submit(i) for i in range(8)]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(outcome, KeyError) for outcome in outcomes[:4])
    assert outcomes[4:] == [40, 50, 60, 70]


def test_a_cancelled_caller_is_left_out_of_its_batch() -> None:
    record = Recorder()
    batcher = FanOutBatcher(record, max_batch_size=64)

    async def main() -> int:
        gone = asyncio.ensure_future(batcher.submit(1))
        kept = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0)  # both are queued
        gone.cancel()
        return await kept

    assert asyncio.run(main()) == 20
    assert record.batches == [[2]]


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch_size must be >= 1"):
        FanOutBatcher(Recorder(), max_batch_size=0)
