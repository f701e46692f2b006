"""What describes a model version's worker pool: its settings, a worker's status, the thread budget."""

from __future__ import annotations

from dataclasses import dataclass

from ..cgroup_limits import usable_cpus
from ..executor import WorkerStatus  # defined with the executor protocol that reports it; re-exported
from ..warmup import WarmupSample

__all__ = ["PoolSettings", "WorkerStatus", "thread_budget"]


def thread_budget(threads: int, max_workers: int) -> int:
    """Intra-op threads per worker: ``threads`` if set (> 0), else an equal share of the usable CPUs
    (affinity capped by the cgroup CPU quota)."""
    if threads > 0:
        return threads
    return max(1, usable_cpus() // max_workers)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSettings:
    """One model version's pool."""

    model: str
    version: str
    path: str
    min_workers: int = 1
    max_workers: int = 1
    threads: int = 0  # 0 = cores // max_workers
    inter_op_threads: int = 1
    graph_optimization_level: str = "all"
    providers: tuple[str, ...] = ("cpu",)  # config.yaml's execution_providers
    custom_op_libraries: tuple[str, ...] = ()  # config.yaml's session.custom_op_libraries
    warmup: tuple[WarmupSample, ...] = ()  # config.yaml's model_warmup, run by every instance as it starts
    start_timeout_s: float = 60.0
    restart_backoff_s: float = 0.05
    max_backoff_s: float = 5.0
    crash_limit: int = 5
    response_timeout_s: float = 120.0  # a batch unanswered this long: the worker is killed, the batch retried
