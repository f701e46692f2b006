"""Where a model version's batches run: thread instances in the server or worker processes.

:class:`InstancePool` is what the batcher and the executor use of a pool; :func:`make_pool` builds the one
a model's ``instances.kind`` asks for: :class:`~.thread_pool.ThreadPool` (``thread``: sessions in the
server process, the cheapest hand-off) or :class:`~.pool.WorkerPool` (``process``: crash isolation, retry,
poison-request isolation, restarts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar, get_args

from ..inference import Tensors
from ..observability.metrics import VersionMetrics
from ..settings import InstanceKind
from ..warmup import WarmupTimes
from .pool import WorkerPool
from .pool_settings import PoolSettings, WorkerStatus
from .shm import Parts
from .thread_pool import ThreadPool
from .worker_process import BatchTimings

__all__ = ["INSTANCE_KINDS", "InstanceKind", "InstancePool", "make_pool"]

INSTANCE_KINDS: tuple[InstanceKind, ...] = get_args(InstanceKind)
R = TypeVar("R")


class InstancePool(Protocol):
    """A model version's instances as the batcher, the autoscaler and the executor see them."""

    settings: PoolSettings
    min_workers: int
    max_workers: int
    last_busy_at: float
    last_change_at: float
    warmup: WarmupTimes  # the warm-ups of its instances so far

    @property
    def kind(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def failure(self) -> str | None: ...
    @property
    def threads(self) -> int: ...
    async def start(self) -> None: ...
    async def run(
        self,
        parts: Mapping[str, Parts],
        output_names: Sequence[str],
        consume: Callable[[Tensors], R],
        *,
        attempts: int = 2,
    ) -> tuple[R, BatchTimings, int]: ...
    async def scale(self, *, min_workers: int, max_workers: int) -> None: ...
    async def add_worker(self) -> None: ...
    def remove_worker(self) -> None: ...
    def status(self) -> list[WorkerStatus]: ...
    async def close(self, *, drain_timeout: float) -> None: ...


def make_pool(
    kind: InstanceKind, settings: PoolSettings, metrics: VersionMetrics | None = None
) -> InstancePool:
    """The pool of ``kind`` for one version (not started)."""
    if kind == "thread":
        return ThreadPool(settings, metrics)
    return WorkerPool(settings, metrics)
