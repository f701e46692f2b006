"""The server's handle on one worker process: start it, send it batches, notice when it dies and why.

All methods run on the server's event loop. A worker runs one batch at a time; the pool guarantees it. The
process is started from the forkserver (:mod:`.forkserver`), which imports numpy, onnxruntime and the
worker module once, so a new worker costs a fork plus its session load.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..inference import Tensors
from .forkserver import prestart, worker_context
from .shm import Parts, Region, TensorLayout, adopt_region, read_tensors, region_size_for, write_tensors
from .worker import WorkerSpec, anonymous_log, message_buffer, recv_message, send_message, worker_main

__all__ = ["BatchTimings", "WorkerDied", "WorkerFailed", "WorkerProcess", "prestart", "worker_context"]

R = TypeVar("R")


class WorkerDied(Exception):
    """The worker process ended while it had work, or before it was ready; ``cause`` says how."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class WorkerFailed(Exception):
    """The worker answered but could not do it: a load error, or ONNX Runtime refusing a batch."""

    def __init__(self, message: str, *, kind: str = "internal") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


@dataclass(frozen=True, slots=True)
class BatchTimings:
    """Where one batch's time went inside the pool, in nanoseconds."""

    input_ns: int
    infer_ns: int
    output_ns: int


def describe_exit(exitcode: int | None) -> str:
    """``killed by signal 9 (SIGKILL)`` / ``exited with code 1``."""
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-exitcode} ({name})"
    return f"exited with code {exitcode}"


class WorkerProcess:
    """One worker process and its shared regions, owned by a pool."""

    def __init__(
        self,
        spec: WorkerSpec,
        on_exit: Callable[[WorkerProcess, str], None],
        *,
        response_timeout_s: float = 120.0,
    ) -> None:
        self.spec = spec
        self.pid = 0
        self.started_at = time.time()
        self.batches = 0
        self.busy = False
        self.retiring = False
        self.ready = False
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[tuple[dict[str, Any], list[int]]] | None = None
        self._inbox: collections.deque[tuple[dict[str, Any], list[int]]] = collections.deque()
        self._cause = ""
        self._inputs: Region | None = None
        self._inputs_sent = False  # whether the worker has self._inputs (a run message carried it)
        self._outputs: Region | None = None
        self._dead = False
        self._stopping = False
        self._response_timeout_s = response_timeout_s
        self._hung = False
        self.waiting_since: float | None = None
        # The worker's stdout/stderr: a file without a name, sent to the worker as its first message; this
        # descriptor reads its last lines for a crash report.
        self._log_fd = anonymous_log()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = parent
        self._buffer = message_buffer()
        self._process = worker_context().Process(
            target=worker_main, args=(child, spec), daemon=True, name=f"modelport-{spec.model}"
        )
        try:
            self._process.start()
        except BaseException:
            os.close(self._log_fd)
            parent.close()
            raise
        finally:
            child.close()
        self.pid = self._process.pid or 0
        with contextlib.suppress(OSError):  # a worker dead already is reported through its sentinel
            send_message(parent, {"op": "log"}, [self._log_fd])
        parent.setblocking(False)
        self._loop.add_reader(parent.fileno(), self._readable)
        self._loop.add_reader(self._process.sentinel, self._exited)

    async def wait_ready(self, timeout: float) -> None:
        """Wait for the session to load; WorkerFailed on a load error, WorkerDied if the process ends."""
        try:
            message, _fds = await asyncio.wait_for(self._next_message(), timeout)
        except TimeoutError:
            self.kill()
            raise WorkerDied(f"did not load its model within {timeout:g} s") from None
        if message.get("op") != "ready":
            raise WorkerFailed(str(message.get("message", message)))
        self.started_at = time.time()
        self.ready = True

    async def run(
        self, parts: Mapping[str, Parts], output_names: Sequence[str], consume: Callable[[Tensors], R]
    ) -> tuple[R, BatchTimings]:
        """Run one batch; ``consume`` reads the outputs (views into shared memory) before they are reused."""
        started = time.monotonic_ns()
        region, layouts = write_tensors(parts, self._input_region)
        message: dict[str, Any] = {
            "op": "run",
            "inputs": [x.to_wire() for x in layouts],
            "outputs": list(output_names),
        }
        if not self._inputs_sent:
            message["region"] = region.size
        waiting = self._next_message()
        try:
            send_message(self._sock, message, [] if self._inputs_sent else [region.fd])
        except OSError:
            waiting.close()
            raise WorkerDied("its socket closed") from None
        self._inputs_sent = True
        input_ns = time.monotonic_ns() - started
        self.waiting_since = time.monotonic()  # the pool's watchdog kills a worker stuck past its timeout
        try:
            reply, fds = await waiting
        finally:
            self.waiting_since = None
        if reply.get("op") == "failed":
            raise WorkerFailed(str(reply.get("message")), kind=str(reply.get("kind", "internal")))
        started = time.monotonic_ns()
        self._outputs = adopt_region(self._outputs, reply, fds)
        if self._outputs is None:
            raise WorkerDied("protocol error: outputs arrived without a region")
        outputs = read_tensors(self._outputs, [TensorLayout.from_wire(x) for x in reply["outputs"]])
        result = consume(outputs)
        del outputs
        self.batches += 1
        timings = BatchTimings(
            input_ns, int(reply["infer_ns"]), time.monotonic_ns() - started + int(reply["copy_ns"])
        )
        return result, timings

    def _input_region(self, nbytes: int) -> Region:
        # A new region counts as the worker's only once a run message has carried it: a batch that fails
        # while being written into it (the worker stays idle) must not leave the worker on the old one.
        if self._inputs is None or self._inputs.size < nbytes:
            if self._inputs is not None:
                self._inputs.close()
            self._inputs = Region.create(region_size_for(nbytes))
            self._inputs_sent = False
        return self._inputs

    async def _next_message(self) -> tuple[dict[str, Any], list[int]]:
        # A message may arrive before this coroutine first runs (event loops differ in whether I/O callbacks
        # or ready tasks go first): it waits in the inbox.
        if self._inbox:
            return self._inbox.popleft()
        if self._dead:
            raise WorkerDied(self._cause)
        self._waiter = self._loop.create_future()
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def _readable(self) -> None:
        try:
            message, fds = recv_message(self._sock, self._buffer)
        except BlockingIOError:
            return
        except OSError:
            message, fds = None, []
        if message is None:
            self._mark_dead()
            return
        if message.get("op") == "error":
            self._stopping = True  # a load failure: the worker exits by itself; not a crash
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((message, fds))
        else:
            self._inbox.append((message, fds))

    def _exited(self) -> None:
        self._mark_dead()

    def _mark_dead(self) -> None:
        if self._dead:
            return
        self._dead = True
        self._loop.remove_reader(self._sock.fileno())
        self._loop.remove_reader(self._process.sentinel)
        self._process.join(timeout=1.0)  # the process has closed its socket or ended: this is quick
        cause = self._cause = self.describe()
        os.close(self._log_fd)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(WorkerDied(cause))
        self._release_resources()
        if not self._stopping:
            self._on_exit(self, cause)

    def kill_if_hung(self, now: float) -> bool:
        """Kill the worker if its batch has gone unanswered past the response timeout (then it is reported
        dead as usual, and the batch retried once); whether it was."""
        if self.waiting_since is None or now - self.waiting_since < self._response_timeout_s:
            return False
        self._hung = True
        self.kill()
        return True

    def describe(self) -> str:
        """How the process ended, with the last lines it wrote to stderr."""
        text = describe_exit(self._process.exitcode)
        if self._hung:
            text = f"gave no answer within {self._response_timeout_s:g} s and was {text}"
        tail = self.stderr_tail()
        return f"worker pid {self.pid} {text}" + (f"; last stderr: {tail}" if tail else "")

    def stderr_tail(self, lines: int = 5) -> str:
        """The last ``lines`` lines of the worker's stdout/stderr log (read through the kept descriptor)."""
        try:
            size = os.fstat(self._log_fd).st_size
            text = os.pread(self._log_fd, 4096, max(0, size - 4096)).decode("utf-8", "replace")
        except OSError:
            return ""
        return " | ".join(line for line in text.splitlines()[-lines:] if line.strip())

    def kill(self) -> None:
        """SIGKILL the process (death is then reported as for any other exit)."""
        if self._process.pid is not None and not self._dead:
            os.kill(self._process.pid, signal.SIGKILL)

    async def stop(self, timeout: float = 2.0) -> None:
        """Ask the worker to exit, kill it after ``timeout``; releases everything. Not reported as a crash."""
        self._stopping = True
        if not self._dead:
            with contextlib.suppress(OSError):
                send_message(self._sock, {"op": "stop"})
            deadline = time.monotonic() + timeout
            while self._process.exitcode is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if self._process.exitcode is None:
                self.kill()
            self._mark_dead()

    def _release_resources(self) -> None:
        for region in (self._inputs, self._outputs):
            if region is not None:
                region.close()
        self._inputs = self._outputs = None
        self._sock.close()
