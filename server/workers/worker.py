"""The worker process: one ONNX Runtime session, fed batches through shared memory.

:func:`worker_main` is the process's body (reached through :func:`.forkserver.worker_entry` from a
forkserver that has already imported this module, numpy and onnxruntime). Only worker processes import
this module: the server's side of the conversation (:mod:`.channel`, :mod:`.worker_process`) never does,
and so never imports ONNX Runtime through it.

The worker's stdout and stderr go to a log file without a name that the server sends first: the server
reads its tail when the worker dies, and nothing is left on disk whatever ends the server or the worker. The
worker records no metrics: timings travel back with each result and only the server records them.

Whatever a batch does wrong on this side (ONNX Runtime refusing it, an output it cannot write) is answered
with :class:`~.channel.Failed` and the worker keeps serving: only a real crash (a signal, ONNX Runtime
aborting) ends the process while it has work.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .channel import (
    Done,
    Failed,
    LoadFailed,
    LogFile,
    Ready,
    Run,
    Stop,
    WorkerSpec,
    message_buffer,
    recv_message,
    send_message,
)
from .feeds import InvalidFeed, RunFailed, build_session, run_session, warm_up
from .shm import OutgoingRegion, Region, adopt_region, read_tensors, write_tensors

__all__ = ["worker_main"]


class _Serving:
    """The worker's state between batches: its session and the two shared regions."""

    def __init__(self, sock: socket.socket, session: ort.InferenceSession) -> None:
        self.sock = sock
        self.session = session
        self.all_outputs = [output.name for output in session.get_outputs()]
        self.inputs: Region | None = None
        self.outputs = OutgoingRegion()

    def run(self, message: Run, fds: list[int]) -> None:
        """Run one batch and answer :class:`Done` or :class:`Failed`."""
        self.inputs = adopt_region(self.inputs, message.region, fds)
        if self.inputs is None:
            send_message(self.sock, Failed("internal", "protocol error: a batch arrived before its region"))
            return
        # Named explicitly even when every output is wanted: the reply must say which array is which.
        names = list(message.outputs) or self.all_outputs
        started = time.monotonic_ns()
        try:
            results = run_session(self.session, names, read_tensors(self.inputs, message.inputs))
        except InvalidFeed as error:
            send_message(self.sock, Failed("invalid", str(error)))
            return
        except RunFailed as failed:  # report, keep serving
            send_message(self.sock, Failed(failed.kind, failed.message))
            return
        infer_ns = time.monotonic_ns() - started
        started = time.monotonic_ns()
        try:
            parts = {name: [np.asarray(value)] for name, value in zip(names, results, strict=True)}
            region, layouts = write_tensors(parts, self.outputs.fit)
        except Exception as error:  # outputs this side cannot hand back (a count or type it cannot name)
            send_message(self.sock, Failed("internal", f"the outputs could not be returned: {error}"))
            return
        new = self.outputs.pending
        reply = Done(layouts, infer_ns, time.monotonic_ns() - started, new.size if new else None)
        send_message(self.sock, reply, [region.fd] if new else [])
        self.outputs.sent()


def worker_main(sock: socket.socket, spec: WorkerSpec) -> None:
    """Process body: load the session, say ready, serve batches until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server decides
    with contextlib.suppress(OSError):  # name it for top/ps -o comm (15 characters at most)
        Path("/proc/self/comm").write_text(f"mp-{spec.model}"[:15])
    buffer = message_buffer()
    message, fds = recv_message(sock, buffer)
    if not isinstance(message, LogFile) or len(fds) != 1:
        sys.exit(f"modelport worker {os.getpid()}: expected the log file first, got {message}")
    os.dup2(fds[0], 1)
    os.dup2(fds[0], 2)
    os.close(fds[0])
    print(
        f"modelport worker {os.getpid()}: loading {spec.model} version {spec.version} "
        f"(intra-op threads {spec.intra_op_threads})",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic_ns()
    try:
        session = build_session(spec)
        warmup_ns = warm_up(session, spec.warmup)
    except Exception as error:  # any load failure is reported to the server, which names the model
        print(f"modelport worker {os.getpid()}: load failed: {error}", file=sys.stderr, flush=True)
        send_message(sock, LoadFailed(str(error)))
        sys.exit(1)
    send_message(sock, Ready(os.getpid(), time.monotonic_ns() - started, warmup_ns))
    serving = _Serving(sock, session)
    while True:
        message, fds = recv_message(sock, buffer)
        if message is None or isinstance(message, Stop):
            return
        if isinstance(message, Run):
            serving.run(message, fds)
        else:
            for fd in fds:
                os.close(fd)
            send_message(sock, Failed("internal", f"protocol error: a worker cannot take {message}"))
