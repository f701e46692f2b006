"""The fallback load generator: ``concurrency`` asyncio tasks in this process, each looping on one request
with ``tritonclient``'s asyncio clients (HTTP or gRPC) for the run's duration.

Used only where no native generator is installed: Python (request encoding, the client's own decoding of
every answer) may saturate a core before the server does, so its numbers are a floor on what the server can
do and the output says so. Latencies are per request, measured here around each ``infer`` call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .errors import BenchError
from .generators import LoadResult, percentile
from .load_plan import LoadPlan
from .request_bodies import datatype_of

__all__ = ["BOTTLENECK_NOTE", "run_python"]

BOTTLENECK_NOTE = (
    "no native load generator (wrk for HTTP, h2load for gRPC) is installed: the in-process Python generator "
    "ran, and it may be the bottleneck (numbers are a floor); install wrk / nghttp2-client for real numbers"
)


def run_python(*, plan: LoadPlan, concurrency: int, seconds: float) -> LoadResult:
    """Closed-loop load of ``plan``'s request from ``concurrency`` tasks for ``seconds``; failures are
    answers that raised."""
    try:
        if plan.protocol == "grpc":
            import tritonclient.grpc.aio as client_module
        else:
            import tritonclient.http.aio as client_module
    except ImportError as error:
        raise BenchError(
            f"the in-process generator needs tritonclient ({error.name} is missing): pip install "
            "'modelport[bench]', or install wrk (HTTP) / nghttp2-client (gRPC)"
        ) from None
    return asyncio.run(_load(client_module, plan, concurrency, seconds))


async def _load(client_module: Any, plan: LoadPlan, concurrency: int, seconds: float) -> LoadResult:
    grpc, binary = plan.protocol == "grpc", plan.binary
    inputs = []
    for name, array in plan.tensors.items():
        tensor = client_module.InferInput(name, list(array.shape), datatype_of(array))
        if grpc:
            tensor.set_data_from_numpy(array)
        else:
            tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)  # encoded once, sent by every request
    requested = [
        client_module.InferRequestedOutput(name) if grpc else client_module.InferRequestedOutput(name, binary)
        for name in plan.outputs
    ]
    client = client_module.InferenceServerClient(plan.endpoint.url.split("://", 1)[-1])
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal failures
        while (started := time.monotonic()) < deadline:
            try:
                await client.infer(plan.model, inputs, model_version=plan.version, outputs=requested)
            except Exception:  # any failed answer counts as a failure; the load goes on
                failures += 1
            latencies.append((time.monotonic() - started) * 1000)

    started = time.monotonic()
    try:
        await asyncio.gather(*(loop() for _ in range(concurrency)))
    finally:
        await client.close()
    elapsed = time.monotonic() - started
    latencies.sort()
    return LoadResult(
        len(latencies) / elapsed,
        percentile(latencies, 50),
        percentile(latencies, 90),
        percentile(latencies, 99),
        len(latencies),
        failures,
        elapsed,
    )
