"""A model version's thread instances: ONNX Runtime sessions run in the server process, off the event loop.

The in-process twin of :class:`~.pool.WorkerPool` with the interface the batcher and the executor use
(``run``, ``size``, ``threads``, ``failure``, ``start``, ``scale``, ``add_worker``, ``remove_worker``,
``status``, ``close``, ``min_workers``/``max_workers``, ``last_busy_at``/``last_change_at``). Triton's ONNX
Runtime backend runs instances the same way.

Contracts:

- Each instance is one thread with its own session (intra-op threads from the same budget as the process
  workers: :func:`~.pool_settings.thread_budget`), running one batch at a time. ONNX Runtime releases the
  GIL while it computes, so the event loop keeps serving; a batch costs no copy into shared memory and no
  message: the inputs go to ``session.run`` as they are (one request) or concatenated once (a batch), and
  ``consume`` reads ONNX Runtime's own output arrays.
- ONNX Runtime's refusals become the same client errors as in a worker process (:mod:`.feeds`): an
  invalid input is :class:`~.errors.InvalidInput`, anything else :class:`~.errors.ModelportError`.
- No crash isolation: a model that crashes ONNX Runtime ends the server (use ``instances.kind: process``
  for such models). ``attempts`` is accepted and ignored: there is no worker death to retry; ``failure`` is
  always None once started.
- Scaling adds or removes threads (each with its own session); a removed busy instance finishes its batch
  first. :meth:`close` waits for busy instances (up to the drain timeout) and releases every session.
- Status reports ``kind="thread"`` and pid 0: a thread has no process of its own.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..errors import InvalidInput, ModelNotReady, ModelportError
from ..inference import Tensors
from ..observability.metrics import VersionMetrics
from ..warmup import WarmupTimes
from .channel import WorkerSpec
from .feeds import InvalidFeed, RunFailed, build_session, run_session, warm_up
from .pool_settings import PoolSettings, WorkerStatus, thread_budget
from .shm import Parts
from .worker_process import BatchTimings

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["ThreadPool"]

R = TypeVar("R")
log = logging.getLogger(__name__)
_ids = itertools.count(1)
_TERMINATE_WAIT_S = 5.0  # how long close waits for terminated runs to return


class _Runner:
    """One daemon thread running the calls submitted to it in order. Not a ThreadPoolExecutor: its threads
    are joined at interpreter exit, which would hold a server told to stop until a long load finished."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def submit(self, call: Callable[[], R]) -> concurrent.futures.Future[R]:
        """Run ``call`` in the thread once the calls before it have run."""
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        self._jobs.put((future, call))
        return future

    def shutdown(self) -> None:
        """End the thread after the calls already submitted."""
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, call = job
            del job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as error:  # handed to the awaiting side, as an executor does
                    future.set_exception(error)
            del future, call


@dataclass(slots=True, eq=False)
class _Instance:
    id: int
    executor: _Runner
    session: onnxruntime.InferenceSession | None = None
    options: onnxruntime.RunOptions | None = None  # its ``terminate`` ends a run still going at close
    all_outputs: tuple[str, ...] = ()
    started_at: float = field(default_factory=time.time)
    batches: int = 0
    busy: bool = False
    retiring: bool = False


class ThreadPool:
    """The thread instances of one model version (see the module docstring for the contracts)."""

    kind = "thread"

    def __init__(self, settings: PoolSettings, metrics: VersionMetrics | None = None) -> None:
        self.settings = settings
        self._metrics = metrics  # instances do not restart: only their warm-ups to record
        self.warmup = WarmupTimes(samples=len(settings.warmup))
        self.min_workers = settings.min_workers
        self.max_workers = settings.max_workers
        self.last_busy_at = 0.0  # monotonic: when a batch last had to wait for an instance
        self.last_change_at = time.monotonic()
        self._instances: dict[int, _Instance] = {}
        self._idle: collections.deque[_Instance] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[_Instance]] = collections.deque()
        self._closing = False
        self._threads = thread_budget(settings.threads, settings.max_workers)
        self._spec = WorkerSpec(
            model=settings.model,
            version=settings.version,
            path=settings.path,
            intra_op_threads=self._threads,
            inter_op_threads=settings.inter_op_threads,
            graph_optimization_level=settings.graph_optimization_level,
            providers=list(settings.providers),
            custom_op_libraries=list(settings.custom_op_libraries),
            warmup=settings.warmup,
        )

    @property
    def size(self) -> int:
        """Instances running or starting (retiring ones excluded)."""
        return sum(1 for i in self._instances.values() if not i.retiring)

    @property
    def failure(self) -> str | None:
        """Always None: a thread instance that could fail the version would have taken the server with it."""
        return None

    @property
    def threads(self) -> int:
        """Intra-op threads each instance's session runs with."""
        return self._threads

    async def start(self) -> None:
        """Open ``min_workers`` sessions (one after another: they share the cores); a load error raises
        :class:`ModelportError` naming the model and releases what was opened."""
        try:
            for _ in range(self.min_workers):
                await self._start_instance()
        except Exception as error:
            await self.close(drain_timeout=0)
            where = f"model '{self.settings.model}' version {self.settings.version}"
            raise ModelportError(f"{where}: instance failed to load: {error}") from None

    async def _start_instance(self) -> None:
        instance = _Instance(next(_ids), _Runner(f"mp-{self.settings.model}"))
        self._instances[instance.id] = instance  # counts in ``size`` while its session loads
        # warn=False: the model manager's signature read logged any provider fallback once already.
        try:
            session, warmup_ns = await asyncio.wrap_future(
                instance.executor.submit(functools.partial(_open_and_warm_up, self._spec))
            )
        except BaseException:
            self._instances.pop(instance.id, None)
            instance.executor.shutdown()
            raise
        instance.session, instance.options = session, _run_options()
        instance.all_outputs = tuple(output.name for output in session.get_outputs())
        instance.started_at = time.time()
        if self.settings.warmup:
            self.warmup.add(warmup_ns)
            if self._metrics is not None:
                self._metrics.record_warmup(warmup_ns / 1e9)
        if self._closing or instance.id not in self._instances:
            self._retire(instance)
            return
        self._release(instance)

    async def run(
        self,
        parts: Mapping[str, Parts],
        output_names: Sequence[str],
        consume: Callable[[Tensors], R],
        *,
        attempts: int = 2,
    ) -> tuple[R, BatchTimings, int]:
        """Run a batch on an idle instance; returns ``consume``'s result (called in the instance's thread, on
        ONNX Runtime's arrays), the timings and the ns spent waiting for an instance."""
        del attempts  # no worker death to retry (module docstring)
        started = time.monotonic_ns()
        instance = await self._acquire()
        waited = time.monotonic_ns() - started
        job = instance.executor.submit(
            functools.partial(self._execute, instance, parts, output_names, consume)
        )
        try:
            result, timings = await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            # The thread may still be running the batch: the instance is free only once it has finished.
            loop = asyncio.get_running_loop()
            job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release, instance))
            raise
        except InvalidFeed as error:
            self._release(instance)
            raise InvalidInput(f"model '{self.settings.model}': {error}") from None
        except RunFailed as failed:
            self._release(instance)
            if failed.kind == "invalid":
                raise InvalidInput(f"model '{self.settings.model}': {failed.message}") from None
            raise ModelportError(f"model '{self.settings.model}': {failed.message}") from None
        except BaseException:
            self._release(instance)
            raise
        instance.batches += 1
        self._release(instance)
        return result, timings, waited

    @staticmethod
    def _execute(
        instance: _Instance,
        parts: Mapping[str, Parts],
        output_names: Sequence[str],
        consume: Callable[[Tensors], R],
    ) -> tuple[R, BatchTimings]:
        """The instance thread's side of :meth:`run`."""
        session = instance.session
        assert session is not None  # handed out only once loaded
        started = time.monotonic_ns()
        inputs: Tensors = {
            name: p[0] if len(p) == 1 else np.concatenate(p, axis=0) for name, p in parts.items()
        }
        names = list(output_names) or list(instance.all_outputs)
        loaded = time.monotonic_ns()
        results: list[Any] = run_session(session, names, inputs, instance.options)
        computed = time.monotonic_ns()
        outputs: Tensors = {name: np.asarray(value) for name, value in zip(names, results, strict=True)}
        result = consume(outputs)
        timings = BatchTimings(loaded - started, computed - loaded, time.monotonic_ns() - computed)
        return result, timings

    async def _acquire(self) -> _Instance:
        if self._closing:
            raise ModelNotReady(f"model '{self.settings.model}' is unloading")
        while self._idle:
            instance = self._idle.popleft()
            if instance.id in self._instances and not instance.retiring:
                instance.busy = True
                return instance
        self.last_busy_at = time.monotonic()
        waiter: asyncio.Future[_Instance] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            instance = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())
            raise
        instance.busy = True
        return instance

    def _release(self, instance: _Instance) -> None:
        instance.busy = False
        if instance.id not in self._instances:
            return
        if instance.retiring or self._closing:
            self._retire(instance)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(instance)
                return
        self._idle.append(instance)

    def _retire(self, instance: _Instance) -> None:
        """Drop the instance and its session (its thread ends once idle)."""
        self._instances.pop(instance.id, None)
        with contextlib.suppress(ValueError):
            self._idle.remove(instance)
        instance.session = None
        instance.executor.shutdown()

    async def scale(self, *, min_workers: int, max_workers: int) -> None:
        """Set the bounds and reach ``min_workers`` instances at least."""
        if not 1 <= min_workers <= max_workers:
            raise InvalidInput(f"workers: need 1 <= min ({min_workers}) <= max ({max_workers})")
        self.min_workers, self.max_workers = min_workers, max_workers
        while self.size > max_workers:
            self.remove_worker()
        while self.size < min_workers and not self._closing:
            before = self.size
            await self.add_worker()
            if self.size <= before:
                break  # it failed to load (logged)
        deadline = time.monotonic() + self.settings.start_timeout_s
        while any(i.session is None for i in self._instances.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def add_worker(self) -> None:
        """Start one more instance (bounded by ``max_workers``); a load failure is logged."""
        if self.size >= self.max_workers or self._closing:
            return
        self.last_change_at = time.monotonic()
        try:
            await self._start_instance()
        except Exception as error:
            log.warning("model %s: a new instance failed to load: %s", self.settings.model, error)
        self.last_change_at = time.monotonic()

    def remove_worker(self) -> None:
        """Retire one instance: an idle one at once, else the next to finish its batch."""
        live = [i for i in self._instances.values() if not i.retiring]
        if not live:
            return
        self.last_change_at = time.monotonic()
        idle = [i for i in self._idle if not i.retiring]
        instance = idle[-1] if idle else live[-1]
        instance.retiring = True
        if not instance.busy and instance.session is not None:
            self._retire(instance)

    def status(self) -> list[WorkerStatus]:
        """The instances now, oldest first (pid 0: a thread has none of its own)."""
        return [
            WorkerStatus(
                id=i.id,
                pid=0,
                state=_state_name(i),
                started_at=i.started_at,
                batches=i.batches,
                kind=self.kind,
            )
            for i in self._instances.values()
        ]

    async def close(self, *, drain_timeout: float) -> None:
        """Let busy instances finish (up to ``drain_timeout``), end the runs still going (ONNX Runtime's
        ``terminate``: their batches fail), then release every session. No run outlives the pool: a session
        torn down under a running thread, as at interpreter exit, aborts the process."""
        deadline = time.monotonic() + drain_timeout
        while any(i.busy for i in self._instances.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self._closing = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ModelNotReady(f"model '{self.settings.model}' is unloading"))
        busy = [i for i in self._instances.values() if i.busy]
        for instance in busy:
            if instance.options is not None:
                instance.options.terminate = True
        deadline = time.monotonic() + _TERMINATE_WAIT_S
        while any(i.busy for i in busy) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for instance in list(self._instances.values()):
            self._retire(instance)


def _open_and_warm_up(spec: WorkerSpec) -> tuple[onnxruntime.InferenceSession, int]:
    """An instance's session, warmed up (blocking: in the instance's thread), and the warm-up's ns."""
    session = build_session(spec, warn=False)
    return session, warm_up(session, spec.warmup)


def _run_options() -> onnxruntime.RunOptions:
    import onnxruntime as ort

    return ort.RunOptions()


def _state_name(instance: _Instance) -> str:
    if instance.retiring:
        return "RETIRING"
    if instance.session is None:
        return "STARTING"
    return "BUSY" if instance.busy else "READY"
