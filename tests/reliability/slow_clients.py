"""Slow clients for the slowloris tests: many sockets that send a request a byte at a time, or stall.

:class:`Slowloris` holds ``count`` connections per target open from a thread of its own: every round it
sends one more byte on each, and a connection the server closed (a 408, an eviction) is counted and opened
again, as an attacker would. :func:`stalled_grpc_call` opens a gRPC call by hand (HTTP/2 frames written
directly) whose request message never finishes.
"""

from __future__ import annotations

import itertools
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["GRPC_PREFACE", "Slowloris", "Target", "stalled_grpc_call"]

GRPC_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass(frozen=True)
class Target:
    """``count`` slow connections to ``port``: ``kind`` "headers" (a header line that never ends), "body"
    (whole headers, then a body that stalls after a few bytes) or "grpc" (an HTTP/2 preface, a byte at a
    time)."""

    port: int
    kind: str
    count: int


def _opening(kind: str) -> bytes:
    if kind == "headers":
        return b"GET /v2/health/ready HTTP/1.1\r\nHost: slow\r\nX-Slow: "
    if kind == "body":
        return (
            b"POST /v2/models/identity/infer HTTP/1.1\r\nHost: slow\r\n"
            b'Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"inputs": ['
        )
    return GRPC_PREFACE[:1]


@dataclass
class Slowloris:
    """The attack, from :meth:`start` to :meth:`stop`; ``closed_by_server`` counts the server's answers."""

    targets: list[Target]
    interval: float = 2.0
    closed_by_server: Counter[str] = field(default_factory=Counter)
    _selector: selectors.DefaultSelector = field(default_factory=selectors.DefaultSelector)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def open_connections(self) -> int:
        return len(self._selector.get_map())

    def start(self) -> None:
        """Open every connection (on return they are all open), then drip from a thread."""
        for target in self.targets:
            for _ in range(target.count):
                self._open(target)
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for key in list(self._selector.get_map().values()):
            self._selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]  # always a socket here

    def _open(self, target: Target) -> None:
        sock = socket.create_connection(("127.0.0.1", target.port), timeout=5)
        try:
            sock.sendall(_opening(target.kind))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, target)

    def _run(self) -> None:
        drip = itertools.count()
        while not self._stop.wait(self.interval):
            for key, _ in self._selector.select(timeout=0):
                self._closed(key.fileobj, key.data)  # type: ignore[arg-type]  # a socket
            step = next(drip)
            for key in list(self._selector.get_map().values()):
                target: Target = key.data
                byte = GRPC_PREFACE[1 + step % (len(GRPC_PREFACE) - 1)] if target.kind == "grpc" else 97
                try:
                    key.fileobj.send(bytes([byte]))  # type: ignore[union-attr]  # a socket
                except OSError:
                    self._closed(key.fileobj, target)  # type: ignore[arg-type]  # a socket

    def _closed(self, sock: socket.socket, target: Target) -> None:
        """The socket is readable: if the server answered or closed, note how (its status line, or
        "closed") and connect again."""
        try:
            answer = sock.recv(200)
        except OSError:
            answer = b""
        if answer and target.kind == "grpc":
            return  # the server's own HTTP/2 SETTINGS, sent at once: the connection is still open
        self._selector.unregister(sock)
        sock.close()
        status = answer.split(b"\r\n", 1)[0].decode("latin-1") if answer.startswith(b"HTTP/") else "closed"
        self.closed_by_server[f"{target.kind}: {status}"] += 1
        if not self._stop.is_set():
            try:
                self._open(target)
            except OSError:
                self.closed_by_server[f"{target.kind}: connect failed"] += 1


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name: bytes, value: bytes) -> bytes:
    """HPACK "literal header field without indexing, new name" (short strings, no Huffman coding)."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def stalled_grpc_call(port: int, method: str = "ModelInfer") -> socket.socket:
    """A connection with one gRPC call open whose request message (100 bytes announced) stops after 10."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    headers = b"".join(
        _literal(name, value)
        for name, value in (
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", f"/inference.GRPCInferenceService/{method}".encode()),
            (b":authority", b"slow"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        )
    )
    sock.sendall(
        GRPC_PREFACE
        + _frame(4, 0, 0, b"")  # SETTINGS (none changed)
        + _frame(1, 0x4, 1, headers)  # HEADERS, END_HEADERS, stream 1
        + _frame(0, 0, 1, b"\x00" + struct.pack(">I", 100) + b"\x0a" * 10)  # DATA: 10 of 100 bytes
    )
    time.sleep(0.2)  # let the server take the call before the caller goes on
    return sock
