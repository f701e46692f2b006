"""The forkserver worker processes start from, and starting it early.

Workers are never forked from the server process itself (it runs gRPC threads); they are forked from a
forkserver: a fresh interpreter that has imported numpy, ONNX Runtime and the worker module once. This module
imports nothing heavy, so :func:`prestart` can run first thing, and the forkserver's imports overlap with the
server's own start-up. A worker process runs :func:`worker_entry`, which the server names without importing
the worker module (nor, with it, ONNX Runtime).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .channel import WorkerSpec

__all__ = ["prestart", "worker_context", "worker_entry"]

_PRELOAD = ["numpy", "onnxruntime", "modelport.server.workers.worker"]


def worker_context() -> multiprocessing.context.ForkServerContext:
    """The forkserver context workers start from (never ``fork``: the server process has gRPC threads)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def prestart() -> None:
    """Start the forkserver now; it imports ONNX Runtime in the background while the server starts."""
    worker_context()
    multiprocessing.forkserver.ensure_running()


def worker_entry(sock: socket.socket, spec: WorkerSpec) -> None:
    """A worker process's target: the worker module is imported here, in the child (the forkserver has it
    loaded already, so this costs nothing there)."""
    from .worker import worker_main

    worker_main(sock, spec)
