"""Raw-ASGI gRPC probe app for pyvoy: where does an ORT call's cost go inside pyvoy's handler?

Not part of the server. Run under the separate venv (build/pyvoy-venv) by
``benchmarks/grpc_pyvoy_probe.sh``. Every request to any path is answered with one fixed gRPC
message frame and ``grpc-status: 0`` trailers; what the handler does first is chosen by
environment variables read once at import:

- ``PROBE_MODE``: ``noop`` (nothing), ``ort`` (one batch-1 run of models/mlp on the loop's
  thread), ``exec`` (the run on one dedicated execution thread that batches whatever queued
  while it was busy, the result handed back with ``call_soon_threadsafe``).
- ``PROBE_SPIN``: ``1``/``0`` sets ORT's intra- and inter-op ``allow_spinning``.
- ``PROBE_THREADS``: ORT ``intra_op_num_threads`` (0 means ORT's default, one per core).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from typing import Any

import numpy as np
import onnxruntime as ort

MODE = os.environ.get("PROBE_MODE", "ort")
_RESPONSE = b"\x00" + (40).to_bytes(4, "big") + bytes(40)
_HEADERS = [(b"content-type", b"application/grpc")]
_TRAILERS = [(b"grpc-status", b"0")]


def _session() -> ort.InferenceSession:
    options = ort.SessionOptions()
    spin = os.environ.get("PROBE_SPIN", "1")
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    options.intra_op_num_threads = int(os.environ.get("PROBE_THREADS", "0"))
    path = os.path.join(os.path.dirname(__file__), "..", "models", "mlp", "1", "model.onnx")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


SESSION = _session()
_INPUT = SESSION.get_inputs()[0].name
_ROW = np.ones((1, 64), dtype=np.float32)
_JOBS: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = queue.SimpleQueue()


def _execution_thread() -> None:
    """Take what queued, run it as one batch, resolve each waiter on its loop."""
    while True:
        batch = [_JOBS.get()]
        while True:
            try:
                batch.append(_JOBS.get_nowait())
            except queue.Empty:
                break
        out = SESSION.run(None, {_INPUT: np.repeat(_ROW, len(batch), axis=0)})[0]
        for i, (loop, fut) in enumerate(batch):
            loop.call_soon_threadsafe(fut.set_result, out[i])


if MODE == "exec":
    threading.Thread(target=_execution_thread, daemon=True).start()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer any HTTP request as a gRPC unary call; lifespan is acknowledged."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    while (await receive()).get("more_body", False):
        pass
    if MODE == "ort":
        SESSION.run(None, {_INPUT: _ROW})
    elif MODE == "exec":
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        _JOBS.put((loop, fut))
        await fut
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS, "trailers": True})
    await send({"type": "http.response.body", "body": _RESPONSE})
    await send({"type": "http.response.trailers", "headers": _TRAILERS})
