"""The REST fast path against the ASGI route, through the real HTTP protocol without sockets.

    .venv/bin/python -m benchmarks.rest_fast_path [--clients 1] [--seconds 2] [--rounds 3] [--json]

Builds the model manager, data plane and workers over the benchmark MLP (as ``benchmarks.inprocess``), then
drives ``LimitedHttpToolsProtocol`` instances (one per client, each a keep-alive connection) over an
in-memory transport: every request is the bytes a client sends, parsed by httptools, answered and written
back as bytes. Rounds alternate the protocol without the fast path (uvicorn's cycle, the ASGI app) and with
it (``FastInfer``), and report requests/s and this process's CPU per request (``process_time``) for each,
and the median ratio. ``--executor inline`` runs the model in this process, on the event loop, with one
ONNX Runtime session and no batching (a benchmark stand-in, not a server executor), so the numbers are the
front end's and the data plane's without the worker processes' hand-off and its noise. Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import re
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvicorn
import uvloop
from modelport.server.app import make_executor
from modelport.server.dataplane import DataPlane
from modelport.server.executor import ExecutionResult, ExecutorStatus, VersionSpec
from modelport.server.inference import Tensors
from modelport.server.observability.metrics import ServerMetrics
from modelport.server.protocols.http_limits import ConnectionBudget, HttpLimits
from modelport.server.protocols.http_protocol import limited_protocol
from modelport.server.protocols.rest_api import create_rest_app
from modelport.server.protocols.rest_fast_infer import FastInfer
from modelport.server.repository.folders import Repository
from modelport.server.repository.model_manager import ModelManager
from modelport.server.settings import ServerSettings
from modelport.server.warmup import WarmupTimes
from modelport.server.workers.worker_process import prestart
from uvicorn.server import ServerState

from tests.helpers.onnx_models import write_model

from .bench_models import BenchModel, mlp
from .loadgen import rest_body
from .serving_bench import CONFIGS


class _InlineExecutor:
    """One ONNX Runtime session run on the event loop per request (benchmark only)."""

    def __init__(self, spec: VersionSpec) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(str(spec.path), options, providers=["CPUExecutionProvider"])
        self.failure: str | None = None
        self.warmup = WarmupTimes()  # none: the benchmark's model has no model_warmup

    async def start(self) -> None:
        pass

    async def infer(
        self, inputs: Tensors, *, output_names: Sequence[str], deadline: float | None
    ) -> ExecutionResult:
        started = time.monotonic_ns()
        values = self._session.run(list(output_names), inputs)
        took = time.monotonic_ns() - started
        outputs = dict(zip(output_names, values, strict=True))
        return ExecutionResult(outputs, 0, 0, took, 0, batch_size=1)

    async def close(self, *, drain_timeout: float) -> None:
        pass

    def status(self) -> ExecutorStatus:
        return ExecutorStatus(0, 0, 1, [], 0, 0, 0, None)

    def effective_config(self) -> dict[str, Any]:
        return {}

    async def scale(self, *, min_workers: int, max_workers: int) -> None:
        raise NotImplementedError


_LENGTH = re.compile(rb"\ncontent-length: (\d+)\r\n")
_LIMITS = HttpLimits(
    max_header_bytes=16384,
    max_url_bytes=8192,
    header_timeout=30.0,
    body_timeout=30.0,
    body_min_rate=1024.0,
    keep_alive_timeout=60.0,
)


class _Transport(asyncio.Transport):
    """A connection's transport in memory: what the server writes is parsed back into responses."""

    def __init__(self) -> None:
        super().__init__()
        self.received = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.received += data
        head_end = self.received.find(b"\r\n\r\n")
        if head_end < 0:
            return
        found = _LENGTH.search(self.received, 0, head_end + 2)
        total = head_end + 4 + (int(found[1]) if found else 0)
        if len(self.received) >= total and self.waiter is not None and not self.waiter.done():
            status = int(self.received[9:12])
            del self.received[:total]
            self.waiter.set_result(status)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _request(model: BenchModel, json: bool) -> bytes:
    if json:
        data = np.random.default_rng(0).standard_normal((1, *model.row_shape)).astype(np.float32)
        tensor = {
            "name": model.input_name,
            "datatype": "FP32",
            "shape": list(data.shape),
            "data": data.ravel(),
        }
        body = orjson.dumps({"inputs": [tensor]}, option=orjson.OPT_SERIALIZE_NUMPY)
        extra = b""
    else:
        body, header_length = rest_body(model)
        extra = b"Inference-Header-Content-Length: %d\r\n" % header_length
    return (
        b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: bench\r\n" % model.name.encode()
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


async def _round(
    protocol_class: type[Any], config: uvicorn.Config, request: bytes, clients: int, seconds: float
) -> tuple[float, float]:
    """(requests/s, CPU us/request) of ``clients`` connections sending ``request`` one after another."""
    state = ServerState()
    count = 0
    stop = time.monotonic() + seconds

    async def client() -> None:
        nonlocal count
        transport = _Transport()
        protocol = protocol_class(config=config, server_state=state, app_state={})
        protocol.connection_made(transport)
        loop = asyncio.get_running_loop()
        while time.monotonic() < stop:
            transport.waiter = loop.create_future()
            protocol.data_received(request)
            status = await transport.waiter
            if status != 200:
                raise RuntimeError(f"the infer call answered {status}")
            count += 1
        protocol.connection_lost(None)

    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    return count / elapsed, cpu / count * 1e6


async def measure(args: argparse.Namespace, repository: Path, model: BenchModel) -> None:
    settings = ServerSettings(repository=repository)
    metrics = ServerMetrics()
    manager = ModelManager(
        repository=Repository(repository),
        settings=settings,
        make_executor=(
            _InlineExecutor
            if args.executor == "inline"
            else functools.partial(make_executor, metrics=metrics)
        ),
        metrics=metrics,
    )
    await manager.start()
    dataplane = DataPlane(manager=manager, settings=settings, metrics=metrics)
    dataplane.set_ready(True)
    budget = ConnectionBudget(1024, _LIMITS)
    fast = FastInfer(dataplane, limit=settings.http_max_body_bytes)
    kinds = {
        "asgi": limited_protocol(budget),
        "fast": limited_protocol(budget, fast_infer=fast),
    }
    config = uvicorn.Config(create_rest_app(dataplane, settings), lifespan="off", log_config=None)
    config.load()
    request = _request(model, args.json)
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    try:
        for protocol_class in kinds.values():  # warm up
            await _round(protocol_class, config, request, args.clients, 0.3)
        for _ in range(args.rounds):
            for kind, protocol_class in kinds.items():
                results[kind].append(
                    await _round(protocol_class, config, request, args.clients, args.seconds)
                )
    finally:
        budget.close()
        await manager.close(drain_timeout=2)
    body = "JSON" if args.json else "binary"
    print(
        f"{model.name} REST {body} via the HTTP protocol, {args.clients} connection(s), {args.rounds} rounds"
    )
    for kind, rows in results.items():
        rates = ", ".join(f"{rate:,.0f}/s {cpu:.1f} us" for rate, cpu in rows)
        print(f"  {kind}: median CPU {statistics.median(cpu for _, cpu in rows):.1f} us/request ({rates})")
    ratios = [a[1] / f[1] for a, f in zip(results["asgi"], results["fast"], strict=True)]
    print(f"  CPU per request, ASGI / fast: median {statistics.median(ratios):.2f} (rounds {ratios})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="JSON bodies instead of the binary extension")
    parser.add_argument("--executor", choices=["workers", "inline"], default="workers")
    args = parser.parse_args()
    prestart()
    with tempfile.TemporaryDirectory(prefix="modelport-fastpath-") as scratch:
        repository = Path(scratch)
        model = mlp()
        write_model(repository, model.name, model.proto, config=CONFIGS[model.name])
        uvloop.run(measure(args, repository, model))


if __name__ == "__main__":
    main()
