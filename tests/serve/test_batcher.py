"""The batching queue on its own: no HTTP, no model, just a function of a batch."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ocula.serve.batcher import Batcher


def run(coroutine):
    return asyncio.run(coroutine)


async def _with_batcher(predict, calls, **options):
    batcher = Batcher(predict, **options)
    await batcher.start()
    try:
        return await calls(batcher)
    finally:
        await batcher.stop()


def test_waiting_items_share_model_calls_and_each_caller_gets_its_own_row():
    sizes = []

    def predict(batch):
        sizes.append(len(batch))
        return batch * 10

    async def calls(batcher):
        return await asyncio.gather(*(batcher.submit(np.array([i], dtype=np.int64)) for i in range(10)))

    rows = run(_with_batcher(predict, calls, max_batch=4, max_delay_ms=50))
    assert [int(r[0]) for r in rows] == [10 * i for i in range(10)]
    assert sum(sizes) == 10 and max(sizes) <= 4 and len(sizes) < 10


def test_a_lone_request_is_answered_after_at_most_the_delay():
    async def calls(batcher):
        return await asyncio.wait_for(batcher.submit(np.ones(3)), timeout=5)

    assert run(_with_batcher(lambda b: b + 1, calls, max_batch=16, max_delay_ms=1)).tolist() == [2, 2, 2]


def test_a_failing_batch_fails_its_callers_and_the_queue_keeps_working():
    state = {"fail": True}

    def predict(batch):
        if state["fail"]:
            state["fail"] = False
            raise RuntimeError("model exploded")
        return batch

    async def calls(batcher):
        failures = await asyncio.gather(*(batcher.submit(np.zeros(1)) for _ in range(3)), return_exceptions=True)
        return failures, await batcher.submit(np.full(1, 7.0))

    failures, after = run(_with_batcher(predict, calls, max_batch=8, max_delay_ms=20))
    assert all(isinstance(f, RuntimeError) for f in failures)
    assert after.tolist() == [7.0]


def test_on_batch_reports_sizes_and_bad_settings_are_refused():
    seen = []

    async def calls(batcher):
        return await asyncio.gather(*(batcher.submit(np.zeros(2)) for _ in range(5)))

    run(_with_batcher(lambda b: b, calls, max_batch=5, max_delay_ms=50, on_batch=lambda n, s: seen.append(n)))
    assert sum(seen) == 5
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(lambda b: b, max_batch=0)
    with pytest.raises(ValueError, match="max_delay_ms"):
        Batcher(lambda b: b, max_delay_ms=-1)


def test_a_batch_waits_only_for_items_that_were_announced():
    sizes = []

    def predict(batch):
        sizes.append(len(batch))
        return batch

    async def calls(batcher):
        alone = await asyncio.wait_for(batcher.submit(np.zeros(1)), timeout=5)  # nothing announced: no wait
        batcher.expect(2)
        first = asyncio.create_task(batcher.submit(np.ones(1)))
        await asyncio.sleep(0.05)  # the second item is still "decoding"; the batch holds for it
        second = await batcher.submit(np.full(1, 2.0))
        return alone, await first, second

    alone, first, second = run(_with_batcher(predict, calls, max_batch=8, max_delay_ms=5000))
    assert sizes == [1, 2] and first.tolist() == [1.0] and second.tolist() == [2.0]
