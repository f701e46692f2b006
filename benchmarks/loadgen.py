"""Drive the server with wrk (REST) and h2load (gRPC) and read their results; measure raw ONNX Runtime.

Both tools run at a fixed concurrency for a fixed time against one request body prepared here:
the REST body uses the binary tensor extension (as ``tritonclient`` sends it), the gRPC body is a framed
``ModelInferRequest`` with ``raw_input_contents``. h2load does not read gRPC trailers, so the caller checks
one request with a real client first; failed REST requests are counted from wrk's non-2xx line.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from modelport.server.protocols.generated import grpc_service_pb2 as pb

from .bench_models import BenchModel

__all__ = ["LoadResult", "ensure_tools", "grpc_body", "raw_ort", "rest_body", "run_h2load", "run_wrk"]

_LUA = """
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = os.getenv("BENCH_HEADER_LENGTH")
done = function(summary, latency, requests)
  io.write(string.format("BENCH p50=%d p99=%d\\n", latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One load run: completed requests per second, latency percentiles (ms), failed requests."""

    rate: float
    p50_ms: float
    p99_ms: float
    requests: int
    failures: int


def ensure_tools() -> None:
    """Install the Debian packages wrk and nghttp2-client (h2load) with apt-get when missing."""
    missing = [
        pkg for tool, pkg in (("wrk", "wrk"), ("h2load", "nghttp2-client")) if shutil.which(tool) is None
    ]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], check=True)


def _row(model: BenchModel, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).random((1, *model.row_shape), dtype=np.float32)


def rest_body(model: BenchModel) -> tuple[bytes, int]:
    """An infer request with the binary tensor extension, and the length of its JSON header."""
    data = _row(model).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": model.input_name,
                    "shape": [1, *model.row_shape],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
            "outputs": [{"name": model.output_name, "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + data, len(header)


def grpc_body(model: BenchModel) -> bytes:
    """A length-prefixed gRPC message: ModelInferRequest with raw_input_contents."""
    request = pb.ModelInferRequest(model_name=model.name)
    tensor = request.inputs.add()
    tensor.name = model.input_name
    tensor.datatype = "FP32"
    tensor.shape.extend([1, *model.row_shape])
    request.outputs.add().name = model.output_name
    request.raw_input_contents.append(_row(model).tobytes())
    payload = request.SerializeToString()
    return struct.pack(">BI", 0, len(payload)) + payload


def run_wrk(url: str, body: bytes, header_length: int, *, concurrency: int, seconds: float) -> LoadResult:
    """wrk with one thread and ``concurrency`` connections for ``seconds``."""
    with tempfile.TemporaryDirectory() as scratch:
        body_path, lua = Path(scratch) / "body.bin", Path(scratch) / "post.lua"
        body_path.write_bytes(body)
        lua.write_text(_LUA)
        env = {
            "BENCH_BODY": str(body_path),
            "BENCH_HEADER_LENGTH": str(header_length),
            "PATH": "/usr/bin:/bin",
        }
        out = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "-s", str(lua), url],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=seconds + 60,
        ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]  # wrk always prints it
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]  # idem
    p50, p99 = (int(v) for v in re.search(r"BENCH p50=(\d+) p99=(\d+)", out).groups())  # type: ignore[union-attr]  # our done()
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    failures = int(failed.group(1)) if failed else 0
    if errors:
        failures += sum(int(n) for n in re.findall(r"\d+", errors.group(0)))
    return LoadResult(rate, p50 / 1000, p99 / 1000, requests, failures)


def run_h2load(url: str, body: bytes, *, concurrency: int, seconds: float, streams: int = 1) -> LoadResult:
    """h2load for ``seconds`` with ``concurrency`` requests in flight; percentiles from its log.

    ``streams`` = 1: ``concurrency`` connections of one stream each (one channel per client thread). Larger:
    ``concurrency // streams`` connections carrying ``streams`` concurrent streams each (clients sharing a
    channel, as ``tritonclient``'s cached channels do).
    """
    connections = max(1, concurrency // streams)
    with tempfile.TemporaryDirectory() as scratch:
        body_path, log = Path(scratch) / "body.bin", Path(scratch) / "requests.tsv"
        body_path.write_bytes(body)
        out = subprocess.run(
            [
                "h2load", "-t1", f"-c{connections}", f"-m{streams}", f"-D{seconds:g}", "--warm-up-time=500ms",
                "-d", str(body_path), "-H", "content-type: application/grpc", "-H", "te: trailers",
                f"--log-file={log}", url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout  # fmt: skip
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    durations = sorted(int(r[2]) / 1000 for r in rows)
    failures = sum(1 for r in rows if r[1] != "200")
    match = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    rate = float(match.group(3)) if match else len(rows) / seconds
    return LoadResult(rate, _percentile(durations, 50), _percentile(durations, 99), len(rows), failures)


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def raw_ort(model: BenchModel, *, sessions: int, threads: int, seconds: float) -> LoadResult:
    """In-process ONNX Runtime at batch 1: ``sessions`` Python threads, each with a session of ``threads``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    data = model.proto.SerializeToString()
    runners = [
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"]) for _ in range(sessions)
    ]
    feed = {model.input_name: _row(model)}
    for session in runners:
        session.run(None, feed)
    latencies: list[list[float]] = [[] for _ in runners]
    stop = time.perf_counter() + seconds

    def loop(index: int) -> None:
        session, own = runners[index], latencies[index]
        while (now := time.perf_counter()) < stop:
            session.run(None, feed)
            own.append((time.perf_counter() - now) * 1000)

    started = time.perf_counter()
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(sessions)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    merged = sorted(v for own in latencies for v in own)
    return LoadResult(
        len(merged) / elapsed, statistics.median(merged), _percentile(merged, 99), len(merged), 0
    )
