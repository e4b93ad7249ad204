"""Dynamic batching: single items in, one model call per batch (BentoML's split: no HTTP here).

``submit`` queues one input and awaits its row of the output. A worker task takes the first
waiting item, gathers more until ``max_batch`` or until ``max_delay_ms`` has passed, runs
``predict`` on one inference thread, and hands each caller its row. While a batch runs, new
requests queue, so under load batches fill without waiting. The caller may ``expect(n)``
items before it has them ready (a request still being decoded); the worker waits for a
batch to fill only while such items are on their way, so a lone request never waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class Batcher:
    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 16,
                 max_delay_ms: float = 5.0, on_batch: Callable[[int, float], None] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be >= 0, got {max_delay_ms}")
        self.predict = predict
        self.max_batch = max_batch
        self.max_delay = max_delay_ms / 1000
        self.on_batch = on_batch  # (batch size, seconds in predict), e.g. for metrics
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._expected = 0  # items announced with expect() and not yet submitted

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ocula-inference")
        self._task = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._task = self._executor = self._queue = None

    def expect(self, n: int) -> None:
        """``n`` items will be submitted soon (negative: they will not after all)."""
        self._expected = max(0, self._expected + n)

    async def submit(self, item: np.ndarray) -> np.ndarray:
        """One input (no batch axis) -> its output row; raises what ``predict`` raised."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() has not been awaited")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        self.expect(-1)
        return await future

    async def _work(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_delay
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0 or self._expected == 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            batch = [(item, future) for item, future in batch if not future.cancelled()]  # clients gone
            if batch:
                await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list) -> None:
        began = loop.time()
        try:
            items = [item for item, _ in batch]  # stacked on the inference thread, off the event loop
            outputs = await loop.run_in_executor(self._executor, lambda: self.predict(np.stack(items)))
        except Exception as error:  # noqa: BLE001 - every caller of this batch gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        if self.on_batch is not None:
            self.on_batch(len(batch), loop.time() - began)
        for row, (_, future) in zip(outputs, batch):
            if not future.done():
                future.set_result(row)
