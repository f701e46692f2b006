"""A model version's worker processes: hand out idle workers, retry a dead worker's batch, scale.

Contracts:

- :meth:`WorkerPool.run` runs one batch on an idle worker. If that worker dies mid-batch the batch is retried
  once on another (or the restarted) worker; inference is idempotent. A second death fails the batch with
  :class:`BatchCrashedWorker`, which the batcher answers by running the batch's requests one by one
  (``attempts=1``) so that only the request that crashes the model fails (:class:`RequestCrashedWorker`).
- A worker that dies while running a batch died of that batch's requests: it is restarted but not counted
  toward the crash limit, so requests that crash the model cost themselves, never the version.
- Dead workers are restarted and a crash loop fails the version as :mod:`.supervision` decides: then
  :attr:`WorkerPool.failure` names the cause (signal or exit code, the worker's last stderr lines), waiting
  and new batches get :class:`~.errors.ModelNotReady`, and nothing restarts until :meth:`WorkerPool.scale`
  is called again (the management API's PUT).
- Workers x intra-op threads stay within the machine's cores unless ``threads`` is set explicitly.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import ErrorCode, InvalidInput, ModelNotReady, ModelportError
from ..inference import Tensors
from ..observability.metrics import VersionMetrics
from ..warmup import WarmupTimes
from .channel import WorkerSpec
from .pool_settings import PoolSettings, WorkerStatus, thread_budget
from .shm import Parts
from .supervision import CrashTracker, watch_for_hung_workers
from .worker_process import BatchTimings, WorkerDied, WorkerFailed, WorkerProcess

__all__ = [
    "BatchCrashedWorker",
    "PoolSettings",
    "RequestCrashedWorker",
    "WorkerPool",
    "WorkerStatus",
    "thread_budget",
]

R = TypeVar("R")
log = logging.getLogger(__name__)
_ids = itertools.count(1)


class BatchCrashedWorker(ModelportError):
    """Every attempt at a batch ended with its worker dead; ``exit`` says how the last one ended."""

    code = ErrorCode.INTERNAL

    def __init__(self, message: str, *, exit: str, attempts: int) -> None:
        super().__init__(message)
        self.exit = exit
        self.attempts = attempts


class RequestCrashedWorker(InvalidInput):
    """A request that crashed the model's worker each time it ran, the last time alone: it is the culprit.

    A client error (400 / INVALID_ARGUMENT): the same request would crash the model again, and retrying it
    only costs more workers. The message says so, without the worker's output.
    """


@dataclass(slots=True)
class _Slot:
    id: int
    process: WorkerProcess


@dataclass(slots=True)
class _State:
    slots: dict[int, _Slot] = field(default_factory=dict)
    idle: collections.deque[_Slot] = field(default_factory=collections.deque)
    waiters: collections.deque[asyncio.Future[_Slot]] = field(default_factory=collections.deque)


class WorkerPool:
    """The worker processes of one model version (see the module docstring for the contracts)."""

    kind = "process"

    def __init__(self, settings: PoolSettings, metrics: VersionMetrics | None = None) -> None:
        self.settings = settings
        self._metrics = metrics
        self.warmup = WarmupTimes(samples=len(settings.warmup))
        self.min_workers = settings.min_workers
        self.max_workers = settings.max_workers
        self._crashes = CrashTracker(settings)
        self.last_busy_at = 0.0  # monotonic: when a batch last had to wait for a worker
        self.last_change_at = time.monotonic()
        self._state = _State()
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._threads = thread_budget(settings.threads, settings.max_workers)

    @property
    def size(self) -> int:
        """Workers running or starting (retiring ones excluded)."""
        live = sum(1 for s in self._state.slots.values() if not s.process.retiring)
        return live

    @property
    def failure(self) -> str | None:
        """Why the version cannot serve (its workers keep dying), or None."""
        return self._crashes.failure

    @property
    def threads(self) -> int:
        """Intra-op threads each worker runs with."""
        return self._threads

    async def start(self) -> None:
        """Start ``min_workers`` workers concurrently; a load error raises :class:`ModelportError`."""
        results = await asyncio.gather(
            *(self._start_worker() for _ in range(self.min_workers)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.close(drain_timeout=0)
            error = errors[0]
            detail = error.message if isinstance(error, WorkerFailed) else str(error)
            where = f"model '{self.settings.model}' version {self.settings.version}"
            raise ModelportError(f"{where}: worker failed to load: {detail}")
        self._spawn(
            watch_for_hung_workers(
                self.settings.model,
                lambda: (slot.process for slot in self._state.slots.values()),
                lambda: self._closing,
                self.settings.response_timeout_s,
            )
        )

    async def _start_worker(self) -> None:
        spec = WorkerSpec(
            model=self.settings.model,
            version=self.settings.version,
            path=self.settings.path,
            intra_op_threads=self._threads,
            inter_op_threads=self.settings.inter_op_threads,
            graph_optimization_level=self.settings.graph_optimization_level,
            providers=list(self.settings.providers),
            custom_op_libraries=list(self.settings.custom_op_libraries),
            warmup=self.settings.warmup,
        )
        # Registered at once (no await before): a starting worker counts in ``size``.
        process = WorkerProcess(spec, self._on_exit, response_timeout_s=self.settings.response_timeout_s)
        slot = _Slot(next(_ids), process)
        self._state.slots[slot.id] = slot
        try:
            await process.wait_ready(self.settings.start_timeout_s)
        except BaseException:
            self._state.slots.pop(slot.id, None)
            await process.stop(timeout=0.5)
            raise
        if self.settings.warmup:
            self.warmup.add(process.warmup_ns)
            if self._metrics is not None:
                self._metrics.record_warmup(process.warmup_ns / 1e9)
        if self._closing:
            self._state.slots.pop(slot.id, None)
            await process.stop()
            return
        self._release(slot)

    async def run(
        self,
        parts: Mapping[str, Parts],
        output_names: Sequence[str],
        consume: Callable[[Tensors], R],
        *,
        attempts: int = 2,
    ) -> tuple[R, BatchTimings, int]:
        """Run a batch; returns ``consume``'s result, the timings and the ns spent waiting for a worker.

        A worker dying on it makes another attempt, up to ``attempts``; then :class:`BatchCrashedWorker`."""
        waited = 0
        for attempt in range(1, attempts + 1):
            started = time.monotonic_ns()
            slot = await self._acquire()
            waited += time.monotonic_ns() - started
            try:
                result, timings = await slot.process.run(parts, output_names, consume)
            except WorkerDied as died:
                if attempt == attempts:
                    times = "twice" if attempts == 2 else f"{attempts} time(s)"
                    raise BatchCrashedWorker(
                        f"model '{self.settings.model}': the batch's worker died {times} ({died.exit})",
                        exit=died.exit,
                        attempts=attempts,
                    ) from None
                log.warning("model %s: %s; retrying its batch once", self.settings.model, died.cause)
                continue
            except WorkerFailed as failed:
                self._release(slot)
                if failed.kind == "invalid":
                    raise InvalidInput(f"model '{self.settings.model}': {failed.message}") from None
                raise ModelportError(f"model '{self.settings.model}': {failed.message}") from None
            except asyncio.CancelledError:
                # The worker may still be running this batch: never hand it out again.
                slot.process.retiring = True
                self._spawn(self._retire(slot))
                raise
            except Exception:
                self._release(
                    slot
                )  # failed on this side (writing inputs, reading outputs): the worker is idle
                raise
            self._crashes.batch_completed()
            self._release(slot)
            return result, timings, waited
        raise AssertionError("unreachable")

    async def _acquire(self) -> _Slot:
        if self.failure is not None:
            raise ModelNotReady(self.failure)
        if self._closing:
            raise ModelNotReady(f"model '{self.settings.model}' is unloading")
        state = self._state
        while state.idle:
            slot = state.idle.popleft()
            if slot.id in state.slots and not slot.process.retiring:
                slot.process.busy = True
                return slot
        self.last_busy_at = time.monotonic()
        waiter: asyncio.Future[_Slot] = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        try:
            slot = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())
            raise
        slot.process.busy = True
        return slot

    def _release(self, slot: _Slot) -> None:
        slot.process.busy = False
        if slot.id not in self._state.slots:
            return
        if slot.process.retiring or self._closing:
            self._spawn(self._retire(slot))
            return
        while self._state.waiters:
            waiter = self._state.waiters.popleft()
            if not waiter.done():
                waiter.set_result(slot)
                return
        self._state.idle.append(slot)

    def _on_exit(self, process: WorkerProcess, cause: str) -> None:
        slot = next((s for s in self._state.slots.values() if s.process is process), None)
        if slot is None:
            return
        del self._state.slots[slot.id]
        if self._closing or process.retiring:
            return
        # Busy: it died running a batch, which is retried and, if need be, isolated request by request.
        delay = self._crashes.request_crashed(cause) if process.busy else self._crashes.crashed(cause)
        if delay is None:
            self._fail_waiters(ModelNotReady(self._crashes.failure or cause))
            return
        # Counted here, when the replacement is decided: the autoscaler may start it before _restart does.
        if self._metrics is not None:
            self._metrics.record_worker_restart()
        self._spawn(self._restart(delay))

    async def _restart(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._closing or self.failure is not None or self.size >= self.max_workers:
            return
        try:
            await self._start_worker()
        except OSError as error:  # no process, socket or log file: the autoscaler restores min_workers
            log.warning("model %s: a restarted worker failed to start: %s", self.settings.model, error)
        except (WorkerDied, WorkerFailed) as error:
            # A worker that dies while loading was reported through _on_exit already.
            if isinstance(error, WorkerFailed):
                self._fail(
                    f"model '{self.settings.model}' is unavailable: a restarted worker failed to "
                    f"load: {error.message}"
                )

    def _fail(self, reason: str) -> None:
        self._crashes.fail(reason)
        self._fail_waiters(ModelNotReady(reason))

    async def scale(self, *, min_workers: int, max_workers: int) -> None:
        """Set the bounds and reach ``min_workers`` at least (also clears a failure: a fresh start)."""
        if not 1 <= min_workers <= max_workers:
            raise InvalidInput(f"workers: need 1 <= min ({min_workers}) <= max ({max_workers})")
        self.min_workers, self.max_workers = min_workers, max_workers
        self._crashes.reset()
        while self.size > max_workers:
            self.remove_worker()
        if self.size < min_workers:
            await asyncio.gather(*(self.add_worker() for _ in range(min_workers - self.size)))
        # Workers started by someone else meanwhile (the autoscaler, a restart) count once they are ready.
        deadline = time.monotonic() + self.settings.start_timeout_s
        while any(not s.process.ready for s in self._state.slots.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def add_worker(self) -> None:
        """Start one more worker (bounded by ``max_workers``)."""
        if self.size >= self.max_workers or self._closing:
            return
        self.last_change_at = time.monotonic()
        try:
            await self._start_worker()
        except (WorkerDied, WorkerFailed, OSError) as error:  # OSError: no process, socket or log file
            log.warning("model %s: a new worker failed to start: %s", self.settings.model, error)
        # Count from when it can take work: delays measured while it loaded do not reflect it.
        self.last_change_at = time.monotonic()

    def remove_worker(self) -> None:
        """Retire one worker: an idle one at once, else the next to finish its batch."""
        live = [s for s in self._state.slots.values() if not s.process.retiring]
        if not live:
            return
        self.last_change_at = time.monotonic()
        idle = [s for s in self._state.idle if not s.process.retiring]
        slot = idle[-1] if idle else live[-1]
        slot.process.retiring = True
        if not slot.process.busy:
            with contextlib.suppress(ValueError):
                self._state.idle.remove(slot)
            self._spawn(self._retire(slot))

    async def _retire(self, slot: _Slot) -> None:
        self._state.slots.pop(slot.id, None)
        await slot.process.stop()

    def status(self) -> list[WorkerStatus]:
        """The workers now, oldest first."""
        return [
            WorkerStatus(
                id=s.id,
                pid=s.process.pid,
                state=_state_name(s.process),
                started_at=s.process.started_at,
                batches=s.process.batches,
            )
            for s in self._state.slots.values()
        ]

    async def close(self, *, drain_timeout: float) -> None:
        """Let busy workers finish (up to ``drain_timeout``), then stop every worker."""
        deadline = time.monotonic() + drain_timeout
        while any(s.process.busy for s in self._state.slots.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self._closing = True
        self._fail_waiters(ModelNotReady(f"model '{self.settings.model}' is unloading"))
        for task in list(self._tasks):
            task.cancel()
        slots = list(self._state.slots.values())
        self._state.slots.clear()
        self._state.idle.clear()
        await asyncio.gather(*(s.process.stop() for s in slots), return_exceptions=True)

    def _fail_waiters(self, error: Exception) -> None:
        while self._state.waiters:
            waiter = self._state.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def _spawn(self, coroutine: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]  # coroutines of None only
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _state_name(process: WorkerProcess) -> str:
    if process.retiring:
        return "RETIRING"
    if not process.ready:
        return "STARTING"
    return "BUSY" if process.busy else "READY"
