"""Where models run: worker processes, each holding one ONNX Runtime session.

``pool`` (instances, hand-off through ``shm`` shared memory, crash retry), ``worker_process`` and ``worker``
(the parent's handle and the child's loop), ``supervision`` (restarts with back-off), ``session`` (ONNX
Runtime sessions and execution providers), ``autoscale`` (the scaling policy), ``forkserver`` (the process
start method), ``pool_settings``.
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .autoscale import Decision, DelayWindow, Observation, ScalingPolicy, decide
    from .forkserver import prestart
    from .pool import WorkerPool
    from .pool_settings import PoolSettings
    from .session import ModelLoadError, read_signature

# What the layers above import from this package; each is imported from its module on first use.
__all__ = [
    "Decision",
    "DelayWindow",
    "ModelLoadError",
    "Observation",
    "PoolSettings",
    "ScalingPolicy",
    "WorkerPool",
    "decide",
    "prestart",
    "read_signature",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "Decision": "autoscale",
        "DelayWindow": "autoscale",
        "ModelLoadError": "session",
        "Observation": "autoscale",
        "PoolSettings": "pool_settings",
        "ScalingPolicy": "autoscale",
        "WorkerPool": "pool",
        "decide": "autoscale",
        "prestart": "forkserver",
        "read_signature": "session",
    },
)
