"""The executor behind every served model version: dynamic batcher -> worker pool, with autoscaling.

Implements :class:`~.executor.Executor`. Settings come from the version's resolved ``config.yaml``:
``max_batch_size``, ``dynamic_batching`` (delay, preferred sizes, queue bound, default timeout),
``workers: {min, max, threads}``, ``instances: {kind}``, ``session`` and ``execution_providers``.

``instances.kind`` (else the server's ``--instance-kind``) picks the pool: ``thread`` runs sessions in the
server process (:class:`~.workers.thread_pool.ThreadPool`), ``process`` in worker processes
(:class:`~.workers.pool.WorkerPool`). Batching and autoscaling are the same for both.

Autoscaling: every ``interval_s`` the queue delays of the last window go through
:func:`~.autoscale.decide`. A quiet pool (no request in the window, no worker above the minimum) is looked
at only every ``idle_interval_s``: an idle server with many models is not woken ten times a second for each.
The target delay is ``workers.target_queue_delay_us``, by default ``max(5 ms, 4 x max_queue_delay)``: a
request waiting several times the batching delay means the workers, not the batcher, hold it up.
``workers.scale_down_idle_s`` (default 10 s) is the idle cooldown before one goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..executor import ExecutionResult, ExecutorStatus
from ..inference import Tensors
from ..model_config import ModelConfig
from ..observability.metrics import VersionMetrics
from ..warmup import WarmupTimes
from ..workers.autoscale import Decision, DelayWindow, Observation, ScalingPolicy, decide
from ..workers.instances import InstanceKind, make_pool
from ..workers.pool import PoolSettings
from .batcher import Batcher, BatcherSettings

if TYPE_CHECKING:
    from ..executor import VersionSpec

__all__ = ["ExecutorStatus", "PooledExecutor"]  # ExecutorStatus: re-exported from executor

log = logging.getLogger(__name__)


class PooledExecutor:
    """One model version served by a dynamic batcher and a pool of thread or process instances."""

    def __init__(
        self,
        *,
        pool: PoolSettings,
        batching: BatcherSettings,
        policy: ScalingPolicy,
        metrics: VersionMetrics | None = None,
        kind: InstanceKind = "process",
        interval_s: float = 0.1,
        idle_interval_s: float = 1.0,
    ) -> None:
        self.policy = policy
        self.pool = make_pool(kind, pool, metrics)
        self._delays = DelayWindow(window_s=policy.window_s)
        self.batcher = Batcher(batching, self.pool, self._delays, metrics)
        self._metrics = metrics
        self._interval_s = interval_s
        self._idle_interval_s = idle_interval_s
        self._autoscaler: asyncio.Task[None] | None = None

    @classmethod
    def from_spec(
        cls,
        spec: VersionSpec,
        metrics: VersionMetrics | None = None,
        *,
        default_kind: InstanceKind = "thread",
    ) -> PooledExecutor:
        """Build from a model version as the model manager describes it (batching: the resolved config's
        :attr:`~.model_config.ResolvedConfig.dynamic_batching`; instances: ``instances.kind``, else
        ``default_kind``)."""
        config = spec.config.config
        dynamic = spec.config.dynamic_batching
        delay_s = dynamic.max_queue_delay_us / 1e6 if dynamic else 0.0
        pool = PoolSettings(
            model=spec.name,
            version=str(spec.version),
            path=str(spec.path),
            min_workers=config.workers.min,
            max_workers=config.workers.max,
            # Unset: budget cores // max workers (config.yaml's workers.threads or session.intra_op_threads).
            threads=_configured_threads(config),
            inter_op_threads=config.session.inter_op_threads or 1,
            graph_optimization_level=config.session.graph_optimization_level,
            providers=tuple(config.execution_providers),
            custom_op_libraries=config.session.custom_op_libraries,
            warmup=spec.config.warmup,
        )
        batching = BatcherSettings(
            model=spec.name,
            max_batch_size=spec.config.max_batch_size,
            batching=dynamic is not None,
            max_queue_delay_s=delay_s,
            preferred_batch_sizes=dynamic.preferred_batch_sizes if dynamic else (),
            max_queue_size=dynamic.max_queue_size if dynamic else 1024,
            default_timeout_s=dynamic.default_timeout_us / 1e6 if dynamic else 0.0,
        )
        target_us = config.workers.target_queue_delay_us
        policy = ScalingPolicy(
            target_delay_s=target_us / 1e6 if target_us is not None else max(0.005, 4 * delay_s),
            idle_cooldown_s=config.workers.scale_down_idle_s,
        )
        kind = config.instances.kind or default_kind
        return cls(pool=pool, batching=batching, policy=policy, metrics=metrics, kind=kind)

    async def start(self) -> None:
        await self.pool.start()
        self.batcher.start()
        self._autoscaler = asyncio.get_running_loop().create_task(self._autoscale_forever())

    async def infer(
        self, inputs: Tensors, *, output_names: Sequence[str], deadline: float | None
    ) -> ExecutionResult:
        return await self.batcher.submit(inputs, output_names, deadline)

    async def close(self, *, drain_timeout: float) -> None:
        deadline = time.monotonic() + drain_timeout
        if self._autoscaler is not None:
            self._autoscaler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._autoscaler
        await self.batcher.close(drain_timeout=drain_timeout)
        await self.pool.close(drain_timeout=max(0.0, deadline - time.monotonic()))

    @property
    def failure(self) -> str | None:
        """Why this version cannot serve (its workers keep dying), or None."""
        return self.pool.failure

    @property
    def warmup(self) -> WarmupTimes:
        """The warm-ups of the pool's instances so far."""
        return self.pool.warmup

    def status(self) -> ExecutorStatus:
        """Workers, queue and bounds now."""
        return ExecutorStatus(
            min_workers=self.pool.min_workers,
            max_workers=self.pool.max_workers,
            threads=self.pool.threads,
            workers=self.pool.status(),
            queue_depth=self.batcher.queue_depth,
            queue_capacity=self.batcher.settings.max_queue_size,
            batches_in_flight=self.batcher.in_flight,
            failure=self.pool.failure,
        )

    def effective_config(self) -> dict[str, Any]:
        """The batching and worker settings in force (for ``GET /models/M``)."""
        b = self.batcher.settings
        return {
            "max_batch_size": b.max_batch_size,
            "dynamic_batching": {
                "enabled": b.batching,
                "max_queue_delay_us": round(b.max_queue_delay_s * 1e6),
                "preferred_batch_sizes": list(b.preferred_batch_sizes),
                "max_queue_size": b.max_queue_size,
                "default_timeout_us": round(b.default_timeout_s * 1e6),
            },
            "instances": {"kind": self.pool.kind},
            "workers": {
                "min": self.pool.min_workers,
                "max": self.pool.max_workers,
                "threads": self.pool.threads,
            },
            "autoscaling": {
                "target_queue_delay_us": round(self.policy.target_delay_s * 1e6),
                "window_s": self.policy.window_s,
                "idle_cooldown_s": self.policy.idle_cooldown_s,
            },
        }

    async def scale(self, *, min_workers: int, max_workers: int) -> None:
        """Set the worker bounds now; the autoscaler moves between them afterwards."""
        await self.pool.scale(min_workers=min_workers, max_workers=max_workers)

    async def _autoscale_forever(self) -> None:
        interval = self._interval_s
        while True:
            await asyncio.sleep(interval)
            if self.pool.failure is not None:
                continue
            now = time.monotonic()
            samples = self._delays.samples(now)
            workers = self.pool.size
            # Only traffic can change the answer for a pool at its minimum with nothing in the window.
            quiet = not samples and workers == self.pool.min_workers
            interval = self._idle_interval_s if quiet else self._interval_s
            step = decide(
                Observation(
                    now=now,
                    workers=workers,
                    min_workers=self.pool.min_workers,
                    max_workers=self.pool.max_workers,
                    samples=samples,
                    last_change_at=self.pool.last_change_at,
                    last_busy_at=max(self.pool.last_busy_at, self.batcher.last_busy_at),
                ),
                self.policy,
            )
            if step is Decision.UP:
                log.info("model %s: scaling up to %d workers", self.pool.settings.model, self.pool.size + 1)
                await self.pool.add_worker()
                if self._metrics is not None:
                    self._metrics.record_autoscale("up")
            elif step is Decision.DOWN:
                log.info("model %s: scaling down to %d workers", self.pool.settings.model, self.pool.size - 1)
                self.pool.remove_worker()
                if self._metrics is not None:
                    self._metrics.record_autoscale("down")


def _configured_threads(config: ModelConfig) -> int:
    """Intra-op threads set in ``config.yaml``, or 0 (= the pool's budget) when neither key was given."""
    if "threads" in config.workers.model_fields_set:
        return config.workers.threads
    if "intra_op_threads" in config.session.model_fields_set:
        return config.session.intra_op_threads
    return 0
