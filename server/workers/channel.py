"""The channel between the server and one worker process: its typed messages and how they travel.

Both sides import this module; only the worker imports ONNX Runtime. The channel is a Unix
``SOCK_SEQPACKET`` socket: every message is one packet, a JSON array ``[tag, fields...]`` (see
:func:`encode` / :func:`decode`, the one place that knows the wire form), with descriptors attached
(``SCM_RIGHTS``) where a message says so. Tensor bytes never travel here: they lie in shared
:class:`~.shm.Region` s and messages carry their :class:`~.shm.TensorLayout` s.

The conversation:

- server -> worker, first: :class:`LogFile` (the descriptor of the worker's log file attached);
- worker -> server, once: :class:`Ready`, or :class:`LoadFailed` and the worker exits 1;
- server -> worker: :class:`Run` (the input region's descriptor attached when ``region`` is set: a new,
  larger region); worker -> server: :class:`Done` (likewise for its output region) or :class:`Failed`;
- server -> worker: :class:`Stop`, or just closing the socket.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from ..warmup import WarmupSample
from .shm import TensorLayout

__all__ = [
    "MAX_FDS",
    "MAX_MESSAGE",
    "Done",
    "Failed",
    "FailureKind",
    "LoadFailed",
    "LogFile",
    "Message",
    "Ready",
    "Run",
    "Stop",
    "WorkerSpec",
    "decode",
    "encode",
    "message_buffer",
    "recv_message",
    "send_message",
]

MAX_MESSAGE = 1 << 20
MAX_FDS = 2
_FD_SIZE = struct.calcsize("i")
_FD_SPACE = socket.CMSG_SPACE(MAX_FDS * _FD_SIZE)

# Messages are values: never changed after they are made. They are not frozen dataclasses because a frozen
# one costs three times as much to make (0.8 against 0.26 us), paid four times per batch on the hot path.
FailureKind = Literal["invalid", "internal"]  # invalid: the batch does not suit the model (a client error)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """Everything a worker needs to build its session; given to the process when it starts."""

    model: str
    version: str
    path: str
    intra_op_threads: int
    inter_op_threads: int = 1
    graph_optimization_level: str = "all"
    providers: list[str] = field(default_factory=lambda: ["cpu"])  # config.yaml's names, preferred first
    custom_op_libraries: list[str] = field(default_factory=list)  # files of the model's folder (config.yaml)
    warmup: tuple[WarmupSample, ...] = ()  # run before the worker says it is ready (pickled with the spec)


@dataclass(slots=True)
class LogFile:
    """server -> worker, first: write stdout and stderr to the attached file."""


@dataclass(slots=True)
class Ready:
    """worker -> server: the session is loaded (and warmed up: ``warmup_ns`` of ``load_ns``)."""

    pid: int
    load_ns: int
    warmup_ns: int = 0


@dataclass(slots=True)
class LoadFailed:
    """worker -> server: the session could not be loaded (the worker then exits)."""

    message: str


@dataclass(slots=True)
class Run:
    """server -> worker: run one batch; ``outputs`` are the names wanted (empty: every output)."""

    inputs: Sequence[TensorLayout]
    outputs: Sequence[str]
    region: int | None = None  # the size of a new input region, its descriptor attached


@dataclass(slots=True)
class Done:
    """worker -> server: the batch's outputs, in the output region, and where the time went."""

    outputs: Sequence[TensorLayout]
    infer_ns: int
    copy_ns: int
    region: int | None = None  # the size of a new output region, its descriptor attached


@dataclass(slots=True)
class Failed:
    """worker -> server: the batch could not run; the worker keeps serving."""

    kind: FailureKind
    message: str


@dataclass(slots=True)
class Stop:
    """server -> worker: exit now."""


Message = LogFile | Ready | LoadFailed | Run | Done | Failed | Stop


def encode(message: Message) -> bytes:
    """The wire form of ``message``: ``[tag, fields...]`` as JSON."""
    match message:
        case Run(inputs, outputs, region):
            return orjson.dumps(["run", [x.to_wire() for x in inputs], list(outputs), region])
        case Done(outputs, infer_ns, copy_ns, region):
            return orjson.dumps(["done", [x.to_wire() for x in outputs], infer_ns, copy_ns, region])
        case Failed(kind, text):
            return orjson.dumps(["failed", kind, text])
        case Ready(pid, load_ns, warmup_ns):
            return orjson.dumps(["ready", pid, load_ns, warmup_ns])
        case LoadFailed(text):
            return orjson.dumps(["load_failed", text])
        case LogFile():
            return orjson.dumps(["log"])
        case Stop():
            return orjson.dumps(["stop"])
    raise TypeError(f"not a channel message: {message!r}")


def _layouts(items: Sequence[Any]) -> list[TensorLayout]:
    return [TensorLayout.from_wire(item) for item in items]


# Each takes the decoded array (tag first). Fields are used as JSON gives them where the type is right by
# construction (the other side encoded them); a wrong one fails in the constructor or at first use.
_DECODERS: dict[str, Callable[[list[Any]], Message]] = {
    "run": lambda m: Run(_layouts(m[1]), m[2], m[3]),
    "done": lambda m: Done(_layouts(m[1]), int(m[2]), int(m[3]), m[4]),
    "failed": lambda m: Failed("invalid" if m[1] == "invalid" else "internal", str(m[2])),
    "ready": lambda m: Ready(int(m[1]), int(m[2]), int(m[3])),
    "load_failed": lambda m: LoadFailed(str(m[1])),
    "log": lambda m: LogFile(),
    "stop": lambda m: Stop(),
}


def decode(data: bytes | memoryview) -> Message:
    """The message ``data`` holds; :class:`ValueError` for anything that is not one (a protocol error)."""
    try:
        item = orjson.loads(data)
        return _DECODERS[item[0]](item)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as error:
        raise ValueError(f"protocol error: not a channel message ({error!r})") from None


def send_message(sock: socket.socket, message: Message, fds: Sequence[int] = ()) -> None:
    """Send one message, with descriptors attached (SCM_RIGHTS) when given."""
    data = encode(message)
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def message_buffer() -> bytearray:
    """The buffer one receiving side reuses for every message (see :func:`recv_message`)."""
    return bytearray(MAX_MESSAGE)


def recv_message(sock: socket.socket, buffer: bytearray) -> tuple[Message | None, list[int]]:
    """Receive one message and its descriptors; ``(None, [])`` when the other side closed the socket.

    The bytes land in ``buffer`` (from :func:`message_buffer`, one per receiver): ``socket.recv_fds`` would
    allocate and shrink a fresh MAX_MESSAGE bytes object per message, an mmap/mremap/munmap round trip that
    cost more than running a small model. A message that is cut or not a message raises :class:`OSError`
    / :class:`ValueError` with its descriptors closed.
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
    try:
        return decode(memoryview(buffer)[:nbytes]), fds
    except ValueError:
        for fd in fds:
            os.close(fd)
        raise
