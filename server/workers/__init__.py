"""Where models run: worker processes, each holding one ONNX Runtime session.

``pool`` (instances, hand-off through ``shm`` shared memory, crash retry), ``worker_process`` and ``worker``
(the parent's handle and the child's loop), ``supervision`` (restarts with back-off), ``session`` (ONNX
Runtime sessions and execution providers), ``autoscale`` (the scaling policy), ``forkserver`` (the process
start method), ``pool_settings``.
"""

__all__: list[str] = []
