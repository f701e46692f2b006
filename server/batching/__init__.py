"""Dynamic batching in front of a version's workers.

``batcher`` gathers requests up to ``max_batch_size`` rows or ``max_queue_delay`` with a bounded queue;
``pooled_executor`` is a version's executor: its batcher, its worker pool and the autoscaler that sizes it.
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .pooled_executor import PooledExecutor

# What the layers above import from this package; each is imported from its module on first use.
__all__ = [
    "PooledExecutor",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "PooledExecutor": "pooled_executor",
    },
)
