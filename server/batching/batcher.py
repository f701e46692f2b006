"""The dynamic batcher: a bounded queue in front of a model version's worker pool.

Contracts:

- :meth:`Batcher.submit` refuses at once with :class:`~.errors.QueueFull` (naming the queue's size) when
  ``max_queue_size`` requests are already waiting.
- A batch is formed when a worker can take it: the oldest request plus every later one that fits (same
  datatypes, same non-batch dimensions, same requested outputs), up to ``max_batch_size`` rows. It waits for
  more rows until the oldest request has waited ``max_queue_delay_s``, unless it already holds
  ``max_batch_size`` rows or one of the ``preferred_batch_sizes``. Inputs are concatenated on axis 0 straight
  into the worker's shared memory and outputs are split back by row ranges.
- A request still queued at its deadline (``time.monotonic()``; the request's ``timeout`` or the model's
  ``default_timeout_s``) fails with :class:`~.errors.DeadlineExceeded` without running. In a batch, it runs.
- Poison isolation: a batch whose worker crashes is retried once by the pool; if it crashes again,
  :mod:`.isolation` finds the request(s) to blame (400 for them, outputs for the others) and the version
  stays available (the pool does not count crashes tied to a request).
- Without dynamic batching (``batching=False``) or for a model with no batch axis (``max_batch_size == 0``)
  every request runs alone, still through the bounded queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DeadlineExceeded, ModelNotReady, QueueFull
from ..executor import ExecutionResult
from ..inference import Tensors
from ..observability.metrics import VersionMetrics
from ..workers.autoscale import DelayWindow
from ..workers.instances import InstancePool
from ..workers.pool import BatchCrashedWorker
from ..workers.worker_process import BatchTimings
from .isolation import isolate

__all__ = ["Batcher", "BatcherSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class BatcherSettings:
    """One model version's batching (from ``max_batch_size`` and ``dynamic_batching`` in ``config.yaml``)."""

    model: str
    max_batch_size: int  # 0: no batch axis
    batching: bool = True
    max_queue_delay_s: float = 0.0005
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 1024
    default_timeout_s: float = 0.0  # 0: none


@dataclass(slots=True, eq=False)
class _Request:
    inputs: Tensors
    output_names: tuple[str, ...]
    key: tuple[Any, ...]
    rows: int
    deadline: float | None
    enqueued: float
    future: asyncio.Future[ExecutionResult]
    timer: asyncio.TimerHandle | None = field(default=None)


def _key(inputs: Tensors, output_names: tuple[str, ...]) -> tuple[Any, ...]:
    return (output_names, *((name, a.dtype.str, a.shape[1:]) for name, a in sorted(inputs.items())))


class Batcher:
    """Queue, batch and dispatch one model version's requests to its pool."""

    def __init__(
        self,
        settings: BatcherSettings,
        pool: InstancePool,
        delays: DelayWindow,
        metrics: VersionMetrics | None = None,
    ) -> None:
        self.settings = settings
        self._metrics = metrics
        self._pool = pool
        self._delays = delays
        self._queue: collections.deque[_Request] = collections.deque()
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pump_scheduled = False
        self._delay_timer: asyncio.TimerHandle | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._closed = False
        self._merge = settings.batching and settings.max_batch_size > 0
        self.last_busy_at = 0.0  # monotonic: when requests last waited because every worker was busy
        self._preferred = frozenset(settings.preferred_batch_sizes)

    @property
    def queue_depth(self) -> int:
        """Requests waiting (not yet in a running batch)."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Batches running now."""
        return self._in_flight

    def start(self) -> None:
        """Start dispatching (call on the event loop that will submit)."""
        self._loop = asyncio.get_running_loop()
        self._schedule_pump()

    async def submit(
        self, inputs: Tensors, output_names: Sequence[str], deadline: float | None
    ) -> ExecutionResult:
        """Queue one validated request and wait for its share of a batch's outputs."""
        if self._closed:
            raise ModelNotReady(f"model '{self.settings.model}' is unloading")
        limit = self.settings.max_queue_size
        if len(self._queue) >= limit:
            raise QueueFull(
                f"model '{self.settings.model}': the queue is full ({len(self._queue)} requests waiting, "
                f"max_queue_size {limit}); retry later or raise dynamic_batching.max_queue_size"
            )
        now = time.monotonic()
        if deadline is None and self.settings.default_timeout_s > 0:
            deadline = now + self.settings.default_timeout_s
        names = tuple(output_names)
        # Rows of the batch axis whether or not requests are merged: a batch's size is what ran in it.
        batch_axis = self.settings.max_batch_size > 0
        rows = int(next(iter(inputs.values())).shape[0]) if batch_axis and inputs else 1
        loop = asyncio.get_running_loop()
        key = _key(inputs, names) if self._merge else ()  # only merging compares keys
        request = _Request(inputs, names, key, rows, deadline, now, loop.create_future())
        if deadline is not None:
            request.timer = loop.call_at(deadline, self._expire, request)
        self._queue.append(request)
        self._schedule_pump()
        return await request.future

    def _expire(self, request: _Request) -> None:
        with contextlib.suppress(ValueError):
            self._queue.remove(request)
            if not request.future.done():
                waited = (time.monotonic() - request.enqueued) * 1e6
                request.future.set_exception(
                    DeadlineExceeded(
                        f"model '{self.settings.model}': the request's timeout expired after {waited:.0f} us "
                        "in the queue, before it ran"
                    )
                )

    # ----- dispatching ------------------------------------------------------------------------------------
    # No task waits for work: whatever can change the answer to "can a batch go now?" (a request queued, a
    # batch finished, the queue delay ran out) schedules one call of _pump with call_soon. Requests that
    # arrive in the same loop iteration (uvicorn reads every ready socket before the pump runs) are batched
    # together, and an idle server costs nothing.

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled and self._loop is not None:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        try:
            self._dispatch_ready()
        except Exception as error:  # a bug in forming a batch must not leave every later request waiting
            log.exception("model %s: the batcher failed; failing the oldest request", self.settings.model)
            if self._queue:
                request = self._queue.popleft()
                if not request.future.done():
                    request.future.set_exception(error)
            self._schedule_pump()

    def _dispatch_ready(self) -> None:
        """Start every batch that can start now; arm the delay timer for one that must wait for rows."""
        loop = self._loop
        assert loop is not None  # scheduled only after start()
        while True:
            self._drop_finished()
            if not self._queue:
                return
            if self._in_flight >= max(1, self._pool.size):
                self.last_busy_at = time.monotonic()
                return
            batch, rows = self._gather()
            if not batch:
                continue
            if self._merge and not self._complete(rows):
                due = batch[0].enqueued + self.settings.max_queue_delay_s
                if due > time.monotonic():
                    if self._delay_timer is None or self._delay_timer.when() > due:
                        if self._delay_timer is not None:
                            self._delay_timer.cancel()
                        self._delay_timer = loop.call_at(due, self._delay_over)
                    return
            for request in batch:
                self._queue.remove(request)
                if request.timer is not None:
                    request.timer.cancel()
            self._in_flight += 1
            task = loop.create_task(self._run(batch, rows))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    def _delay_over(self) -> None:
        self._delay_timer = None
        self._schedule_pump()

    def _drop_finished(self) -> None:
        # Requests whose caller went away (cancelled) leave the queue without running.
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()

    def _complete(self, rows: int) -> bool:
        return rows >= self.settings.max_batch_size or rows in self._preferred

    def _gather(self) -> tuple[list[_Request], int]:
        now = time.monotonic()
        expired = [r for r in self._queue if r.deadline is not None and r.deadline <= now]
        for request in expired:
            self._expire(request)  # its timer may not have fired yet: never run a request past its deadline
        if not self._queue:
            return [], 0
        first = self._queue[0]
        if not self._merge:
            return [first], first.rows
        batch, rows = [first], first.rows
        for request in itertools.islice(self._queue, 1, None):  # the queue does not change during the loop
            if request.future.done() or request.key != first.key:
                continue
            if rows + request.rows > self.settings.max_batch_size:
                break
            batch.append(request)
            rows += request.rows
            if rows == self.settings.max_batch_size:
                break
        return batch, rows

    async def _run(self, batch: list[_Request], rows: int) -> None:
        started = time.monotonic()
        live = [r for r in batch if not r.future.done()]
        try:
            if not live:
                return
            for request in live:
                self._delays.add(started, started - request.enqueued)
            parts = {name: [r.inputs[name] for r in live] for name in live[0].inputs}
            rows = sum(r.rows for r in live)
            offsets = list(itertools.accumulate((r.rows for r in live), initial=0))

            def split(outputs: Tensors) -> list[Tensors]:
                if not self._merge:
                    return [{name: np.array(value, copy=True) for name, value in outputs.items()}]
                return [
                    {
                        name: np.array(value[offsets[i] : offsets[i + 1]], copy=True)
                        for name, value in outputs.items()
                    }
                    for i in range(len(live))
                ]

            try:
                results, timings, waited_ns = await self._pool.run(parts, live[0].output_names, split)
            except BatchCrashedWorker as crashed:

                def deliver(
                    request: _Request, outputs: Tensors, timings: BatchTimings, waited_ns: int
                ) -> None:
                    if self._metrics is not None:
                        self._metrics.record_execution(request.rows)
                    self._deliver(request, outputs, timings, waited_ns, rows=request.rows, started=started)

                await isolate(live, crashed, pool=self._pool, model=self.settings.model, deliver=deliver)
                return
            except Exception as error:  # every request of the batch gets the batch's error
                for request in live:
                    if not request.future.done():
                        request.future.set_exception(error)
                return
            if self._metrics is not None:
                self._metrics.record_execution(rows)
            for request, outputs in zip(live, results, strict=True):
                self._deliver(request, outputs, timings, waited_ns, rows=rows, started=started)
        finally:
            self._in_flight -= 1
            self._schedule_pump()

    def _deliver(
        self,
        request: _Request,
        outputs: Tensors,
        timings: BatchTimings,
        waited_ns: int,
        *,
        rows: int,
        started: float,
    ) -> None:
        if request.future.done():
            return
        request.future.set_result(
            ExecutionResult(
                outputs=outputs,
                queue_ns=int((started - request.enqueued) * 1e9) + waited_ns,
                compute_input_ns=timings.input_ns,
                compute_infer_ns=timings.infer_ns,
                compute_output_ns=timings.output_ns,
                batch_size=rows,
            )
        )

    async def close(self, *, drain_timeout: float) -> None:
        """Refuse new requests, let queued and running ones finish (up to ``drain_timeout``), then stop."""
        self._closed = True
        deadline = time.monotonic() + drain_timeout
        while (self._queue or self._in_flight) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._delay_timer is not None:
            self._delay_timer.cancel()
            self._delay_timer = None
        self._loop = None  # no more pumping: what is still queued is refused below
        for request in self._queue:
            if request.timer is not None:
                request.timer.cancel()
            if not request.future.done():
                request.future.set_exception(ModelNotReady(f"model '{self.settings.model}' is unloading"))
        self._queue.clear()
