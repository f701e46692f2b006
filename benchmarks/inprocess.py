"""The server's own cost per request, without a listener: clients call the REST or gRPC adapter in-process.

    .venv/bin/python -m benchmarks.inprocess [--protocol grpc|rest] [--model mlp|cnn] [--clients 8]
                                             [--seconds 4] [--kind thread|process]

Builds the real model manager, data plane and worker processes over a temporary repository holding the
benchmark model (``--model``, the MLP by default; the same config as ``serving_bench``), then runs
``--clients`` coroutines that each send one request after another: gRPC through
``InferenceServicer.model_infer`` (the serialized request parsed and the answer serialized, as grpc.aio
would), REST through the ASGI app with the binary tensor extension. It reports requests/s, the server
process's CPU per request (``process_time``: no HTTP/2 or HTTP/1.1 stack, no load generator), the mean batch,
and the worker's CPU per batch. ``N`` clients submit in the same loop iteration, so batches hold ``N``
requests; ``--clients 1`` shows the cost of a batch of one. ``--kind`` picks the model's instances
(``--instance-kind``): with ``thread`` the sessions run in this process, so its CPU includes ONNX Runtime's
and the worker CPU is nil; ``total CPU`` (both together, per request) compares the kinds. Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvloop
from modelport.server.app import make_executor
from modelport.server.dataplane import DataPlane
from modelport.server.observability.metrics import ServerMetrics
from modelport.server.protocols.grpc_infer_message import InferMessage, lenient_infer_deserializer
from modelport.server.protocols.grpc_servicer import InferenceServicer
from modelport.server.protocols.rest_api import create_rest_app
from modelport.server.repository.folders import Repository
from modelport.server.repository.model_manager import ModelManager
from modelport.server.settings import ServerSettings
from modelport.server.workers.worker_process import prestart

from tests.helpers.onnx_models import write_model

from .bench_models import BenchModel, cnn, mlp
from .loadgen import grpc_body, rest_body
from .serving_bench import CONFIGS, process_cpu_seconds, tree_cpu_seconds

Call = Callable[[], Awaitable[None]]


class CallContext:
    """What the servicer reads of a grpc.aio context on this path: the metadata, and where it leaves the
    end-of-call hook (run by nobody: the benchmark has no call to end)."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        pass


def grpc_call(dataplane: DataPlane, model: BenchModel, metadata: tuple[tuple[str, str], ...] = ()) -> Call:
    """One ModelInfer: parse the request bytes, run the RPC's handler, serialize the answer."""
    servicer = InferenceServicer(dataplane, max_tensor_bytes=2**31 - 1)
    body = grpc_body(model)[5:]  # without the gRPC length prefix
    context = CallContext(metadata)

    async def call() -> None:
        request = lenient_infer_deserializer(body)  # the server's deserializer of ModelInfer
        assert isinstance(request, InferMessage), request
        answer = await servicer.model_infer(request, context)
        answer.SerializeToString()

    return call


def rest_call(
    dataplane: DataPlane,
    settings: ServerSettings,
    model: BenchModel,
    extra_headers: tuple[tuple[bytes, bytes], ...] = (),
) -> Call:
    """One POST .../infer with the binary tensor extension, straight into the ASGI app."""
    app = create_rest_app(dataplane, settings)
    body, header_length = rest_body(model)
    headers = [
        (b"inference-header-content-length", str(header_length).encode()),
        (b"content-length", str(len(body)).encode()),
        *extra_headers,
    ]
    path = f"/v2/models/{model.name}/infer"

    async def call() -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers,
        }
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"the infer call answered {status}")

    return call


def worker_cpu_seconds() -> float:
    """CPU of this process's descendants (the workers, and the idle forkserver), as serving_bench counts
    a server's workers."""
    pid = os.getpid()
    return tree_cpu_seconds(pid) - process_cpu_seconds(pid)


async def measure(args: argparse.Namespace, repository: Path, model: BenchModel) -> str:
    settings = ServerSettings(repository=repository, instance_kind=args.kind)
    metrics = ServerMetrics()
    manager = ModelManager(
        repository=Repository(repository),
        settings=settings,
        make_executor=functools.partial(make_executor, metrics=metrics, instance_kind=args.kind),
        metrics=metrics,
    )
    await manager.start()
    dataplane = DataPlane(manager=manager, settings=settings, metrics=metrics)
    dataplane.set_ready(True)
    call = grpc_call(dataplane, model) if args.protocol == "grpc" else rest_call(dataplane, settings, model)
    try:
        for _ in range(20):  # warm up
            await call()
        count = 0
        stop = time.monotonic() + args.seconds

        async def client() -> None:
            nonlocal count
            while time.monotonic() < stop:
                await call()
                count += 1

        batches_before = manager.statistics(model.name)[0]["execution_count"]
        workers_before, started, cpu_before = worker_cpu_seconds(), time.monotonic(), time.process_time()
        await asyncio.gather(*(client() for _ in range(args.clients)))
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_before
        batches = max(1, manager.statistics(model.name)[0]["execution_count"] - batches_before)
        workers = worker_cpu_seconds() - workers_before
    finally:
        await manager.close(drain_timeout=2)
    return (
        f"{model.name} {args.protocol} in-process, {args.kind} instances, {args.clients} client(s): "
        f"{count / elapsed:,.0f} requests/s, "
        f"server CPU {cpu / count * 1e6:.1f} us/request, mean batch {count / batches:.2f}, "
        f"worker CPU {workers / batches * 1e6:.1f} us/batch, total CPU {(cpu + workers) / count * 1e6:.1f} "
        "us/request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=["grpc", "rest"], default="grpc")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--kind", choices=["thread", "process"], default="thread")
    args = parser.parse_args()
    if args.kind == "process":
        prestart()  # the forkserver's imports would count as worker CPU of a thread run
    with tempfile.TemporaryDirectory(prefix="modelport-inprocess-") as scratch:
        repository = Path(scratch)
        model = mlp() if args.model == "mlp" else cnn()
        write_model(repository, model.name, model.proto, config=CONFIGS[model.name])
        print(uvloop.run(measure(args, repository, model)))


if __name__ == "__main__":
    main()
