"""The server's handle on one worker process: start it, send it batches, notice when it dies and why.

All methods run on the server's event loop. A worker runs one batch at a time; the pool guarantees it. The
process is started from the forkserver (:mod:`.forkserver`), which imports numpy, onnxruntime and the
worker module once, so a new worker costs a fork plus its session load. This side speaks the
:mod:`.channel` and never imports the worker module, nor ONNX Runtime.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..inference import Tensors
from .channel import (
    Done,
    Failed,
    LoadFailed,
    LogFile,
    Message,
    Ready,
    Run,
    Stop,
    WorkerSpec,
    message_buffer,
    recv_message,
    send_message,
)
from .forkserver import prestart, worker_context, worker_entry
from .shm import OutgoingRegion, Parts, Region, adopt_region, read_tensors, write_tensors

__all__ = [
    "BatchTimings",
    "WorkerDied",
    "WorkerFailed",
    "WorkerProcess",
    "anonymous_log",
    "prestart",
    "worker_context",
]

R = TypeVar("R")


class WorkerDied(Exception):
    """The worker process ended while it had work, or before it was ready.

    ``cause`` says how, with the worker's last stderr lines (for the log and the operator); ``exit`` says
    only how it ended (``worker pid 12 killed by signal 6 (SIGABRT)``), fit for a client's error message.
    """

    def __init__(self, cause: str, exit: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.exit = exit or cause


class WorkerFailed(Exception):
    """The worker answered but could not do it: a load error, or ONNX Runtime refusing a batch."""

    def __init__(self, message: str, *, kind: str = "internal") -> None:  # kind: channel.FailureKind
        super().__init__(message)
        self.message = message
        self.kind = kind


@dataclass(frozen=True, slots=True)
class BatchTimings:
    """Where one batch's time went inside the pool, in nanoseconds."""

    input_ns: int
    infer_ns: int
    output_ns: int


def anonymous_log() -> int:
    """A new, empty file without a name for one worker's stdout and stderr, open for reading and appending.

    ``O_TMPFILE`` in the temp directory (on disk, as a log should be), else a ``memfd``: the file goes when
    the last descriptor closes, so a killed server or worker leaves nothing behind.
    """
    try:
        return os.open(tempfile.gettempdir(), os.O_TMPFILE | os.O_RDWR | os.O_APPEND, 0o600)
    except OSError:  # a temp file system without O_TMPFILE
        return os.memfd_create("modelport-worker-log", os.MFD_CLOEXEC)


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
        self.warmup_ns = 0  # how long its warm-up took (from its Ready)
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[tuple[Message, list[int]]] | None = None
        self._inbox: collections.deque[tuple[Message, list[int]]] = collections.deque()
        self._cause = ""
        self._exit = ""
        self._inputs = OutgoingRegion()
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
            target=worker_entry, args=(child, spec), daemon=True, name=f"modelport-{spec.model}"
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
            send_message(parent, LogFile(), [self._log_fd])
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
        if not isinstance(message, Ready):
            raise WorkerFailed(message.message if isinstance(message, LoadFailed) else f"{message}")
        self.warmup_ns = message.warmup_ns
        self.started_at = time.time()
        self.ready = True

    async def run(
        self, parts: Mapping[str, Parts], output_names: Sequence[str], consume: Callable[[Tensors], R]
    ) -> tuple[R, BatchTimings]:
        """Run one batch; ``consume`` reads the outputs (views into shared memory) before they are reused."""
        started = time.monotonic_ns()
        region, layouts = write_tensors(parts, self._inputs.fit)
        new = self._inputs.pending  # a new region counts as the worker's only once a message carried it
        waiting = self._next_message()
        try:
            send_message(
                self._sock, Run(layouts, output_names, new.size if new else None), [region.fd] if new else []
            )
        except OSError:
            waiting.close()
            raise WorkerDied("its socket closed") from None
        self._inputs.sent()
        input_ns = time.monotonic_ns() - started
        self.waiting_since = time.monotonic()  # the pool's watchdog kills a worker stuck past its timeout
        try:
            reply, fds = await waiting
        finally:
            self.waiting_since = None
        if isinstance(reply, Failed):
            raise WorkerFailed(reply.message, kind=reply.kind)
        if not isinstance(reply, Done):
            self.kill()  # a worker out of step with the protocol cannot be trusted with the next batch
            raise WorkerDied(f"protocol error: a batch was answered with {reply}")
        started = time.monotonic_ns()
        self._outputs = adopt_region(self._outputs, reply.region, fds)
        if self._outputs is None:
            raise WorkerDied("protocol error: outputs arrived without a region")
        outputs = read_tensors(self._outputs, reply.outputs)
        result = consume(outputs)
        del outputs
        self.batches += 1
        timings = BatchTimings(input_ns, reply.infer_ns, time.monotonic_ns() - started + reply.copy_ns)
        return result, timings

    async def _next_message(self) -> tuple[Message, list[int]]:
        # A message may arrive before this coroutine first runs (event loops differ in whether I/O callbacks
        # or ready tasks go first): it waits in the inbox.
        if self._inbox:
            return self._inbox.popleft()
        if self._dead:
            raise WorkerDied(self._cause, self._exit)
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
        except ValueError:  # not a channel message: a worker out of step is not trusted further
            self.kill()
            return  # its death is reported through the sentinel
        except OSError:
            message, fds = None, []
        if message is None:
            self._mark_dead()
            return
        if isinstance(message, LoadFailed):
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
        self._exit = self.describe(with_stderr=False)
        os.close(self._log_fd)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(WorkerDied(cause, self._exit))
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

    def describe(self, *, with_stderr: bool = True) -> str:
        """How the process ended, with the last lines it wrote to stderr (unless ``with_stderr`` is false)."""
        text = describe_exit(self._process.exitcode)
        if self._hung:
            text = f"gave no answer within {self._response_timeout_s:g} s and was {text}"
        tail = self.stderr_tail() if with_stderr else ""
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
                send_message(self._sock, Stop())
            deadline = time.monotonic() + timeout
            while self._process.exitcode is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if self._process.exitcode is None:
                self.kill()
            self._mark_dead()

    def _release_resources(self) -> None:
        self._inputs.close()
        if self._outputs is not None:
            self._outputs.close()
            self._outputs = None
        self._sock.close()
