"""The worker process: one ONNX Runtime session, fed batches through shared memory.

:func:`worker_main` is the process entry point (started by :mod:`.pool` from a forkserver that has already
imported this module, numpy and onnxruntime). It speaks a tiny request/response protocol over a Unix
``SOCK_SEQPACKET`` socket; every message is one JSON object, tensor bytes stay in :class:`~.shm.Region` s:

- server -> worker, first: ``{"op": "log"}`` with the descriptor of the worker's log file attached;
- worker -> server, once: ``{"op": "ready", "pid", "load_ns"}``, or ``{"op": "error", "message"}`` and exit 1
- server -> worker: ``{"op": "run", "inputs": [layout...], "outputs": [name...], "region": size?}``, with the
  input region's descriptor attached when ``region`` is present (a new, larger region);
- worker -> server: ``{"op": "done", "outputs": [layout...], "infer_ns", "copy_ns", "region": size?}`` (the
  worker's new output region attached when present) or ``{"op": "failed", "kind", "message"}``;
- server -> worker: ``{"op": "stop"}``, or just closing the socket.

The worker's stdout and stderr go to that log file, which has no name (see :func:`anonymous_log`): the server
reads its tail when the worker dies, and nothing is left on disk whatever ends the server or the worker. The
worker records no metrics: timings travel back with each result and only the server records them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson

from ..inference import Tensors
from ..model_config import SessionConfig
from .session import open_session
from .shm import Region, TensorLayout, adopt_region, read_tensors, region_size_for, write_tensors

__all__ = [
    "MAX_FDS",
    "MAX_MESSAGE",
    "WorkerSpec",
    "anonymous_log",
    "message_buffer",
    "recv_message",
    "send_message",
    "worker_main",
]

MAX_MESSAGE = 1 << 20
MAX_FDS = 2
_FD_SIZE = struct.calcsize("i")
_FD_SPACE = socket.CMSG_SPACE(MAX_FDS * _FD_SIZE)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """Everything a worker needs to build its session; sent once, when the process starts."""

    model: str
    version: str
    path: str
    intra_op_threads: int
    inter_op_threads: int = 1
    graph_optimization_level: str = "all"
    providers: list[str] = field(
        default_factory=lambda: ["cpu"]
    )  # config.yaml's short names, preferred first


def anonymous_log() -> int:
    """A new, empty file without a name for one worker's stdout and stderr, open for reading and appending.

    ``O_TMPFILE`` in the temp directory (on disk, as a log should be), else a ``memfd``: the file goes when
    the last descriptor closes, so a killed server or worker leaves nothing behind.
    """
    try:
        return os.open(tempfile.gettempdir(), os.O_TMPFILE | os.O_RDWR | os.O_APPEND, 0o600)
    except OSError:  # a temp file system without O_TMPFILE
        return os.memfd_create("modelport-worker-log", os.MFD_CLOEXEC)


def send_message(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one JSON control message, with descriptors attached (SCM_RIGHTS) when given."""
    data = orjson.dumps(message)
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def message_buffer() -> bytearray:
    """The buffer one receiving side reuses for every message (see :func:`recv_message`)."""
    return bytearray(MAX_MESSAGE)


def recv_message(sock: socket.socket, buffer: bytearray) -> tuple[dict[str, Any] | None, list[int]]:
    """Receive one message and its descriptors; ``(None, [])`` when the other side closed the socket.

    The bytes land in ``buffer`` (from :func:`message_buffer`, one per receiver): ``socket.recv_fds`` would
    allocate and shrink a fresh MAX_MESSAGE bytes object per message, an mmap/mremap/munmap round trip that
    cost more than running a small model.
    """
    nbytes, ancdata, flags, _addr = sock.recvmsg_into([buffer], _FD_SPACE)
    fds = [
        fd
        for level, kind, data in ancdata
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
        for (fd,) in struct.iter_unpack("i", data[: len(data) - len(data) % _FD_SIZE])
    ]
    if nbytes == 0 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        if nbytes == 0:
            return None, []
        raise OSError(f"a control message was cut: more than {MAX_MESSAGE} bytes or {MAX_FDS} descriptors")
    message: dict[str, Any] = orjson.loads(memoryview(buffer)[:nbytes])
    return message, fds


def _build_session(spec: WorkerSpec) -> ort.InferenceSession:
    config = SessionConfig(
        graph_optimization_level=spec.graph_optimization_level,  # type: ignore[arg-type]  # validated by config.yaml
        intra_op_threads=spec.intra_op_threads,
        inter_op_threads=spec.inter_op_threads,
    )
    return open_session(
        Path(spec.path), model=spec.model, config=config, providers=tuple(spec.providers)
    ).session


def _onnx_inputs(tensors: Tensors) -> dict[str, Any]:
    """Feeds for ONNX Runtime: its string tensors take (UTF-8) str; the protocol's BYTES are bytes."""
    result: dict[str, Any] = {}
    for name, array in tensors.items():
        if array.dtype == np.object_:
            try:
                result[name] = np.array(
                    [item.decode("utf-8") if isinstance(item, bytes) else item for item in array.ravel()],
                    dtype=np.object_,
                ).reshape(array.shape)
            except UnicodeDecodeError as error:
                raise _Invalid(
                    f"tensor '{name}': ONNX Runtime string tensors must be UTF-8 ({error.reason} at byte "
                    f"{error.start} of an element)"
                ) from None
        else:
            result[name] = array
    return result


class _Invalid(Exception):
    """A batch the model cannot take; reported to the server as an invalid input."""


class _Serving:
    """The worker's state between batches: its session and the two shared regions."""

    def __init__(self, sock: socket.socket, session: ort.InferenceSession) -> None:
        self.sock = sock
        self.session = session
        self.inputs: Region | None = None
        self.outputs: Region | None = None
        self.new_output_region: Region | None = None

    def _output_region(self, nbytes: int) -> Region:
        if self.outputs is None or self.outputs.size < nbytes:
            if self.outputs is not None:
                self.outputs.close()
            self.outputs = self.new_output_region = Region.create(region_size_for(nbytes))
        return self.outputs

    def run(self, message: dict[str, Any], fds: list[int]) -> None:
        self.inputs = adopt_region(self.inputs, message, fds)
        if self.inputs is None:
            raise RuntimeError("protocol error: a run message arrived before any input region")
        layouts = [TensorLayout.from_wire(item) for item in message["inputs"]]
        names: list[str] = list(message["outputs"])
        started = time.monotonic_ns()
        try:
            results = self.session.run(names, _onnx_inputs(read_tensors(self.inputs, layouts)))
        except _Invalid as error:
            send_message(self.sock, {"op": "failed", "kind": "invalid", "message": str(error)})
            return
        except Exception as error:  # ONNX Runtime raises its own exception types; report, keep serving
            kind = "invalid" if "INVALID_ARGUMENT" in str(error) or "InvalidArgument" in repr(error) else ""
            send_message(self.sock, {"op": "failed", "kind": kind or "internal", "message": str(error)})
            return
        infer_ns = time.monotonic_ns() - started
        started = time.monotonic_ns()
        self.new_output_region = None
        parts = {name: [np.asarray(value)] for name, value in zip(names, results, strict=True)}
        region, out_layouts = write_tensors(parts, self._output_region)
        reply: dict[str, Any] = {
            "op": "done",
            "outputs": [layout.to_wire() for layout in out_layouts],
            "infer_ns": infer_ns,
            "copy_ns": time.monotonic_ns() - started,
        }
        if self.new_output_region is not None:
            reply["region"] = region.size
            send_message(self.sock, reply, [region.fd])
        else:
            send_message(self.sock, reply)


def worker_main(sock: socket.socket, spec: WorkerSpec) -> None:
    """Process entry point: load the session, say ready, serve batches until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server decides
    with contextlib.suppress(OSError):  # name it for top/ps -o comm (15 characters at most)
        Path("/proc/self/comm").write_text(f"mp-{spec.model}"[:15])
    buffer = message_buffer()
    message, fds = recv_message(sock, buffer)
    if message is None or message.get("op") != "log" or len(fds) != 1:
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
        session = _build_session(spec)
    except Exception as error:  # any load failure is reported to the server, which names the model
        print(f"modelport worker {os.getpid()}: load failed: {error}", file=sys.stderr, flush=True)
        send_message(sock, {"op": "error", "message": str(error)})
        sys.exit(1)
    send_message(sock, {"op": "ready", "pid": os.getpid(), "load_ns": time.monotonic_ns() - started})
    serving = _Serving(sock, session)
    while True:
        message, fds = recv_message(sock, buffer)
        if message is None or message.get("op") == "stop":
            return
        serving.run(message, fds)
