"""Dynamic batching in front of a version's workers.

``batcher`` gathers requests up to ``max_batch_size`` rows or ``max_queue_delay`` with a bounded queue;
``pooled_executor`` is a version's executor: its batcher, its worker pool and the autoscaler that sizes it.
"""

__all__: list[str] = []
