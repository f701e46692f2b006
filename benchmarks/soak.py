"""A soak: minutes of mixed traffic against a real server, watching that nothing drifts.

Clients at a fixed concurrency send, in a fixed mix, valid requests over REST (JSON and the binary
extension) and gRPC to three models, and one request in ten that is wrong (unknown model, bad shape, broken
JSON, a shared-memory tensor). Every window (10 s) records the rate, the latency of valid requests, and the
server's resident memory (with its workers), open descriptors and threads. The run fails if any request got
an answer it should not (a 5xx for a client error, an error for a valid request, a lost connection); the
table shows whether memory, descriptors and latency stayed flat. docs/reliability.md quotes the figures.

    .venv/bin/python -m benchmarks.soak [--seconds 180] [--concurrency 16] [--out soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import psutil
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc

from tests.helpers.onnx_models import add_sub_model, identity_model, mlp_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

WINDOW_S = 10.0


@dataclass
class Window:
    """One window of the run."""

    second: float
    requests: int
    rate: float
    p50_ms: float
    p99_ms: float
    rss_mib: float
    descriptors: int
    threads: int


@dataclass
class Tally:
    """What the clients saw, across the run and in the current window."""

    valid: int = 0
    refused: int = 0  # wrong requests answered with the right client error
    unexpected: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # of valid requests, this window


Call = Callable[[], Awaitable[str | None]]  # None: as expected; else what went wrong


def _rest_calls(client: httpx.AsyncClient) -> list[tuple[Call, bool]]:
    features = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    mlp = {
        "inputs": [
            {"name": "features", "datatype": "FP32", "shape": [4, 16], "data": features.ravel().tolist()}
        ]
    }
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT0",
                    "datatype": "FP32",
                    "shape": [2, 4],
                    "parameters": {"binary_data_size": 32},
                }
            ],
            "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}],
        }
    ).encode()
    binary = header + np.arange(8, dtype="<f4").tobytes()
    ints = {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": list(range(16))}
    add_sub = {"inputs": [ints, {**ints, "name": "INPUT1"}]}

    async def post(path: str, expected: int, **kwargs: Any) -> str | None:
        response = await client.post(path, **kwargs)
        if response.status_code != expected:
            return f"POST {path}: {response.status_code} {response.text[:200]} (expected {expected})"
        return None

    shared = {
        "name": "INPUT0",
        "datatype": "FP32",
        "shape": [1, 4],
        "parameters": {"shared_memory_region": "r"},
    }
    return [
        (lambda: post("/v2/models/mlp/infer", 200, json=mlp), True),
        (lambda: post("/v2/models/mlp/infer", 200, json=mlp), True),
        (
            lambda: post(
                "/v2/models/identity/infer",
                200,
                content=binary,
                headers={"Inference-Header-Content-Length": str(len(header))},
            ),
            True,
        ),
        (lambda: post("/v2/models/simple/infer", 200, json=add_sub), True),
        (lambda: post("/v2/models/nope/infer", 400, json=mlp), False),
        (lambda: post("/v2/models/mlp/infer", 400, content=b'{"inputs": [{"name": "features"'), False),
        (lambda: post("/v2/models/identity/infer", 501, json={"inputs": [shared]}), False),
    ]


def _grpc_calls(stub: pb_grpc.GRPCInferenceServiceStub) -> list[tuple[Call, bool]]:
    valid = pb.ModelInferRequest(model_name="identity")
    valid.inputs.add(name="INPUT0", datatype="FP32", shape=[2, 4])
    valid.raw_input_contents.append(np.arange(8, dtype="<f4").tobytes())
    wrong = pb.ModelInferRequest(model_name="identity")
    wrong.inputs.add(name="INPUT0", datatype="FP32", shape=[2, 5])
    wrong.raw_input_contents.append(np.arange(8, dtype="<f4").tobytes())

    async def infer(message: pb.ModelInferRequest, expected: grpc.StatusCode) -> str | None:
        try:
            await stub.ModelInfer(message, timeout=30)
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code is not expected:
                return f"gRPC ModelInfer: {code} {error.details()} (expected {expected})"
        return None if code is expected else f"gRPC ModelInfer: {code} (expected {expected})"

    return [
        (lambda: infer(valid, grpc.StatusCode.OK), True),
        (lambda: infer(valid, grpc.StatusCode.OK), True),
        (lambda: infer(wrong, grpc.StatusCode.INVALID_ARGUMENT), False),
    ]


def _sample(server: ServerProcess) -> tuple[float, int, int]:
    """The server's resident memory with its workers (MiB), its descriptors and threads."""
    parent = psutil.Process(server.process.pid)
    tree = [parent, *parent.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in tree if p.is_running())
    return rss / 2**20, parent.num_fds(), parent.num_threads()


async def _soak(server: ServerProcess, seconds: float, concurrency: int) -> tuple[list[Window], Tally]:
    tally = Tally()
    windows: list[Window] = []
    async with httpx.AsyncClient(base_url=f"http://{server.http_url}", timeout=30) as client:
        channel = grpc.aio.insecure_channel(server.grpc_url)
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # generated
        every = _rest_calls(client) + _grpc_calls(stub)
        valid = [call for call in every if call[1]]
        calls = valid * 6 + [call for call in every if not call[1]]  # 36 valid to 4 wrong: one in ten
        started = time.monotonic()
        deadline = started + seconds

        async def client_loop(offset: int) -> None:
            index = offset
            while time.monotonic() < deadline:
                call, valid = calls[index % len(calls)]
                index += 7  # a stride co-prime with the mix's 40: each client walks all of it
                began = time.monotonic()
                try:
                    problem = await call()
                except Exception as error:
                    problem = f"{type(error).__name__}: {error}"
                if problem:
                    tally.unexpected.append(problem)
                elif valid:
                    tally.valid += 1
                    tally.latencies.append(time.monotonic() - began)
                else:
                    tally.refused += 1

        async def sampler() -> None:
            last = started
            done = 0
            while time.monotonic() < deadline:
                await asyncio.sleep(WINDOW_S)
                now = time.monotonic()
                latencies = sorted(tally.latencies)
                tally.latencies.clear()
                total = tally.valid + tally.refused + len(tally.unexpected)
                rss, descriptors, threads = _sample(server)
                windows.append(
                    Window(
                        second=round(now - started, 1),
                        requests=total - done,
                        rate=round((total - done) / (now - last), 1),
                        p50_ms=round(1000 * statistics.median(latencies), 2) if latencies else 0.0,
                        p99_ms=round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2)
                        if latencies
                        else 0.0,
                        rss_mib=round(rss, 1),
                        descriptors=descriptors,
                        threads=threads,
                    )
                )
                last, done = now, total

        await asyncio.gather(sampler(), *(client_loop(i) for i in range(concurrency)))
        await channel.close()
    return windows, tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("soak.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelport-soak-") as scratch:
        root = Path(scratch)
        batching = {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": 500}}
        write_model(root, "identity", identity_model("FP32", (-1, 4)), config=batching)
        write_model(root, "simple", add_sub_model("INT32", (-1, 16)), config=batching)
        write_model(root, "mlp", mlp_model(), config={**batching, "max_batch_size": 16})
        with start_server(root) as server:
            before = _sample(server)
            windows, tally = asyncio.run(_soak(server, args.seconds, args.concurrency))
    columns = ("second", "requests", "rate/s", "p50 ms", "p99 ms", "RSS MiB", "fds", "threads")
    print(" ".join(f"{c:>9}" for c in columns))
    for w in windows:
        row = (w.second, w.requests, w.rate, w.p50_ms, w.p99_ms, w.rss_mib, w.descriptors, w.threads)
        print(" ".join(f"{value:>9}" for value in row))
    total = tally.valid + tally.refused + len(tally.unexpected)
    print(
        f"{total} requests: {tally.valid} valid answered, {tally.refused} wrong ones refused as expected, "
        f"{len(tally.unexpected)} unexpected"
    )
    for problem in sorted(set(tally.unexpected))[:10]:
        print("  ", problem)
    summary = {
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "requests": total,
        "valid": tally.valid,
        "refused_as_expected": tally.refused,
        "unexpected": len(tally.unexpected),
        "unexpected_kinds": sorted(set(tally.unexpected))[:20],
        "rss_mib_before": round(before[0], 1),
        "windows": [asdict(w) for w in windows],
    }
    args.out.write_text(json.dumps(summary, indent=2))
    if tally.unexpected:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
