"""The in-process executor: ONNX Runtime's ``run`` in a small thread pool, one request per run.

ONNX Runtime releases the GIL while it computes, so the event loop keeps serving while a run is in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from .errors import DeadlineExceeded, InvalidInput, ServerUnavailable
from .executor import ExecutionResult
from .inference import Tensors
from .session import OpenSession, from_ort_outputs, to_ort_inputs

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Runs one model version in this process (the :class:`~.executor.Executor` protocol).

    ``batching`` tells it that the first dimension of the inputs is the batch, for the statistics.
    """

    def __init__(self, session: OpenSession, *, name: str, batching: bool, threads: int = 2) -> None:
        self._session = session
        self._name = name
        self._batching = batching
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=f"ort-{self._name}")

    def _run(self, inputs: Tensors, output_names: list[str], submitted: int) -> ExecutionResult:
        started = time.monotonic_ns()
        try:
            arrays = self._session.session.run(output_names, to_ort_inputs(inputs))
        except Exception as error:
            if type(error).__name__ in ("InvalidArgument", "Fail"):
                raise InvalidInput(f"model '{self._name}' refused the inputs: {error}") from error
            raise
        finished = time.monotonic_ns()
        rows = next(iter(inputs.values())).shape[0] if self._batching and inputs else 1
        return ExecutionResult(
            outputs=from_ort_outputs(output_names, arrays),
            queue_ns=started - submitted,
            compute_input_ns=0,
            compute_infer_ns=finished - started,
            compute_output_ns=0,
            batch_size=rows,
        )

    async def infer(
        self, inputs: Tensors, *, output_names: Sequence[str], deadline: float | None
    ) -> ExecutionResult:
        if self._pool is None:
            raise ServerUnavailable(f"model '{self._name}' is not running")
        if deadline is not None and time.monotonic() >= deadline:
            raise DeadlineExceeded(f"model '{self._name}': the request's timeout expired before it ran")
        self._in_flight += 1
        self._idle.clear()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._pool, self._run, inputs, list(output_names), time.monotonic_ns()
            )
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def close(self, *, drain_timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
