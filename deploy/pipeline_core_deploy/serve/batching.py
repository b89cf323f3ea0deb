"""Dynamic batching in Triton's terms: requests queue per model and run together, up to
``max_batch_size`` rows, once the oldest has waited ``max_queue_delay_us`` or the batch is full.

Why: a small model spends most of a batch-of-one call on per-call overhead, so rows that arrive
together are far cheaper run together. The queue is bounded (``max_queue_size`` requests): a full
queue refuses at once (:class:`Overloaded`, HTTP 503) instead of growing without limit. Inference
runs on an executor thread (onnxruntime releases the GIL), so the event loop keeps reading
requests while a batch runs, and those requests form the next batch.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

Outputs = dict[str, np.ndarray]
RunBatch = Callable[[np.ndarray], Outputs]
#: what looks at a batch's inputs and outputs on the event loop before they are split among the
#: requests (it may add per-row entries, which are split with the outputs)
Screen = Callable[[np.ndarray, Outputs], Outputs]


def _unscreened(rows: np.ndarray, outputs: Outputs) -> Outputs:
    return outputs


class Overloaded(Exception):
    """The model's queue is full; the caller should retry later (HTTP 503)."""


class Retired(Exception):
    """The batcher's model was unloaded or replaced after the request resolved it: the caller asks the
    repository again (a replacement serves it; an unloaded model is then unknown)."""


@dataclass(frozen=True)
class BatchingConfig:
    """How one model's requests are queued and batched (Triton's names and meanings).

    ``dynamic_batching = False`` runs every request on its own, as it arrives; ``max_queue_size``
    then bounds the requests waiting for or holding an inference thread.
    """

    dynamic_batching: bool = True
    max_batch_size: int = 64
    max_queue_delay_us: int = 0
    max_queue_size: int = 256
    instances: int = 1  # batches of this model that may run at once

    def __post_init__(self) -> None:
        for key in ("max_batch_size", "max_queue_size", "instances"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.max_queue_delay_us < 0:
            raise ValueError(f"max_queue_delay_us must be 0 or more, got {self.max_queue_delay_us}")


class Observer:
    """What a batcher reports as it works (metrics); the default reports nothing."""

    def queue_depth(self, requests: int) -> None: ...

    def executed(self, rows: int, requests: int, queued_ns: int, input_ns: int, infer_ns: int, output_ns: int) -> None:
        """One model execution: ``rows`` rows of ``requests`` requests, which waited ``queued_ns`` in all
        before it began; then the nanoseconds spent preparing its input, running the model, and
        screening and splitting its outputs."""


@dataclass
class _Pending:
    rows: np.ndarray
    future: asyncio.Future[Outputs]
    arrived: int  # time.perf_counter_ns()


class Batcher:
    """The queue and workers of one model. ``start`` inside the running event loop; ``submit``
    from request handlers; ``stop`` after the server has drained its requests."""

    def __init__(self, run: RunBatch, config: BatchingConfig, executor: Executor, observer: Observer | None = None,
                 screen: Screen = _unscreened) -> None:
        self._run, self._screen = run, screen
        self.config = config
        self._executor = executor
        self._observer = observer or Observer()
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._waiting = 0  # requests queued or running, for the bound without dynamic batching
        self._wakeup: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._running = 0  # batches running now
        self._retired = False

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        if self.config.dynamic_batching:
            self._workers = [asyncio.create_task(self._work(), name=f"batcher-{i}") for i in range(self.config.instances)]

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(Overloaded("the server is shutting down"))
        self._queue.clear()

    async def retire(self, timeout: float = 30.0) -> None:
        """Stop taking requests (new ones raise :class:`Retired`), let every queued and running one
        finish (at most ``timeout`` seconds), then stop: how an unloaded or replaced model leaves."""
        self._retired = True
        deadline = time.monotonic() + timeout
        while (self._queue or self._running or self._waiting) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await self.stop()

    @property
    def depth(self) -> int:
        """Requests waiting (queued, not yet running)."""
        return len(self._queue) if self.config.dynamic_batching else self._waiting

    async def submit(self, rows: np.ndarray) -> Outputs:
        """Every output of the model for ``rows``, computed with whatever else is queued."""
        if self._retired:
            raise Retired
        if not self.config.dynamic_batching:
            return await self._alone(rows)
        if len(self._queue) >= self.config.max_queue_size:
            raise Overloaded(f"the queue holds {len(self._queue)} requests (max_queue_size {self.config.max_queue_size}); retry later")
        loop = asyncio.get_running_loop()
        pending = _Pending(rows, loop.create_future(), time.perf_counter_ns())
        self._queue.append(pending)
        self._queued_rows += len(rows)
        self._observer.queue_depth(len(self._queue))
        assert self._wakeup is not None, "Batcher.start() was not called"
        self._wakeup.set()
        return await pending.future

    async def _alone(self, rows: np.ndarray) -> Outputs:
        if self._waiting >= self.config.max_queue_size:
            raise Overloaded(f"{self._waiting} requests are waiting (max_queue_size {self.config.max_queue_size}); retry later")
        self._waiting += 1
        self._observer.queue_depth(self._waiting)
        try:
            started = time.perf_counter_ns()
            outputs = await asyncio.get_running_loop().run_in_executor(self._executor, self._run, rows)
            ran = time.perf_counter_ns()
            outputs = self._screen(rows, outputs)
            self._observer.executed(len(rows), 1, 0, 0, ran - started, time.perf_counter_ns() - ran)
            return outputs
        finally:
            self._waiting -= 1
            self._observer.queue_depth(self._waiting)

    async def _work(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        delay = self.config.max_queue_delay_us * 1000
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            if delay:
                await self._fill(self._queue[0].arrived + delay)
            batch = self._take()
            self._observer.queue_depth(len(self._queue))
            self._running += 1
            try:
                self._execute(batch, await self._run_batch(loop, batch))
            finally:
                self._running -= 1

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> tuple[Outputs, np.ndarray, int, int, int] | None:
        """The batch's outputs, its inputs and when its phases began; None when the model failed
        (every caller in the batch then hears why)."""
        started = time.perf_counter_ns()
        inputs = batch[0].rows if len(batch) == 1 else np.concatenate([p.rows for p in batch])
        prepared = time.perf_counter_ns()
        try:
            outputs = await loop.run_in_executor(self._executor, self._run, inputs)
        except Exception as error:
            _fail(batch, error)
            return None
        return outputs, inputs, started, prepared, time.perf_counter_ns()

    def _execute(self, batch: list[_Pending], ran: tuple[Outputs, np.ndarray, int, int, int] | None) -> None:
        """Screen a batch's outputs, hand each caller its rows, and report the execution."""
        if ran is None:
            return
        outputs, inputs, started, prepared, finished = ran
        try:
            outputs = self._screen(inputs, outputs)
        except Exception as error:  # a bug in the screen: every caller in the batch hears it
            _fail(batch, error)
            return
        start = 0
        for pending in batch:
            end = start + len(pending.rows)
            if not pending.future.done():  # a caller that went away is skipped
                pending.future.set_result({name: value[start:end] for name, value in outputs.items()})
            start = end
        queued = sum(started - pending.arrived for pending in batch)
        self._observer.executed(len(inputs), len(batch), queued, prepared - started, finished - prepared, time.perf_counter_ns() - finished)

    async def _fill(self, deadline_ns: int) -> None:
        """Wait until the queue holds a full batch or the oldest request's delay is over."""
        assert self._wakeup is not None
        while self._queued_rows < self.config.max_batch_size:
            remaining = (deadline_ns - time.perf_counter_ns()) / 1e9
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Pending]:
        """The oldest requests that fit in one batch; a request larger than a batch runs alone
        (the model's runner splits it), so no caller is ever refused for its size."""
        batch = [self._queue.popleft()]
        rows = len(batch[0].rows)
        while self._queue and rows + len(self._queue[0].rows) <= self.config.max_batch_size:
            pending = self._queue.popleft()
            rows += len(pending.rows)
            batch.append(pending)
        self._queued_rows -= rows
        return batch


def _fail(batch: list[_Pending], error: Exception) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(error)
