"""The one interface the data plane calls to run a model version.

An executor owns how a batch gets computed; the server's one implementation is
:class:`~.batching.pooled_executor.PooledExecutor` (the dynamic batcher and a pool of worker processes). The
data plane validates inputs against the signature before calling it and never knows which executor it holds;
the management API and the live metrics read :meth:`Executor.status` and call :meth:`Executor.scale`
through this protocol too, so nothing above it downcasts to the implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from .inference import Signature, Tensors
from .model_config import ResolvedConfig
from .warmup import WarmupTimes

__all__ = ["ExecutionResult", "Executor", "ExecutorStatus", "VersionSpec", "WorkerStatus"]


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """Outputs of one request and where its time went (nanoseconds, measured with ``time.monotonic_ns``)."""

    outputs: Tensors
    queue_ns: int  # waiting in a queue or for a free worker
    compute_input_ns: int  # copying/concatenating inputs into the batch
    compute_infer_ns: int  # the ONNX Runtime run itself
    compute_output_ns: int  # splitting and copying outputs back
    batch_size: int  # rows in the batch this request ran in (0: answered from the response cache)
    cache: Literal["hit", "miss"] | None = None  # how the response cache took part (None: not enabled)
    cache_ns: int = 0  # the cache's lookup (a hit) or lookup and insertion (a miss)


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """One worker as the management API and the live metrics show it."""

    id: int
    pid: int
    state: str  # STARTING, READY, BUSY, RETIRING
    started_at: float  # wall clock (time.time())
    batches: int
    kind: str = "process"  # "thread": an instance in the server process (pid 0: none of its own)


@dataclass(frozen=True, slots=True)
class ExecutorStatus:
    """What an executor looks like now. An executor without worker processes reports no workers and
    ``min_workers == max_workers == 0``."""

    min_workers: int
    max_workers: int
    threads: int  # intra-op threads per worker
    workers: Sequence[WorkerStatus]
    queue_depth: int  # requests waiting for a batch
    queue_capacity: int  # the most that may wait (more are refused at once)
    batches_in_flight: int
    failure: str | None


class Executor(Protocol):
    """Runs one loaded model version."""

    async def start(self) -> None:
        """Acquire resources (sessions, worker processes); the version is ready when this returns."""

    async def infer(
        self, inputs: Tensors, *, output_names: Sequence[str], deadline: float | None
    ) -> ExecutionResult:
        """Run one already validated request.

        ``deadline`` is a ``time.monotonic()`` instant; a request still queued at its deadline raises
        :class:`~modelport.server.errors.DeadlineExceeded` without running.
        """

    async def close(self, *, drain_timeout: float) -> None:
        """Finish in-flight work (at most ``drain_timeout`` seconds), then release everything."""

    def status(self) -> ExecutorStatus:
        """A snapshot of queue and workers. Call on the event loop (it reads loop-owned state)."""

    def effective_config(self) -> dict[str, Any]:
        """The batching and worker settings in force, as ``GET /models/M`` of the management API shows them
        (``max_batch_size``, ``dynamic_batching``, ``workers``, ``autoscaling``)."""

    async def scale(self, *, min_workers: int, max_workers: int) -> None:
        """Set the worker bounds (already checked against the config's ranges) and reach ``min_workers``.

        An executor that cannot scale raises :class:`~modelport.server.errors.Unsupported`.
        """

    @property
    def failure(self) -> str | None:
        """Why this started executor can no longer serve (e.g. its workers keep dying), or None.

        The model manager reports such a version UNAVAILABLE with this as the reason and refuses requests
        to it with :class:`~modelport.server.errors.ModelNotReady`.
        """

    @property
    def warmup(self) -> WarmupTimes:
        """How long its instances took to warm up (``model_warmup``), updated as instances start."""


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """Everything an executor needs to run one model version.

    ``signature`` is the graph's inputs, outputs and active provider, read from a session that was opened
    with the configured providers and options and released again: executors open their own sessions (the
    server process holds no weights).
    """

    name: str
    version: int
    path: Path
    config: ResolvedConfig
    signature: Signature
