"""Drive the server with wrk (REST) and h2load (gRPC) and read their results; measure raw ONNX Runtime.

The drivers (``LoadResult``, ``run_wrk``, ``run_h2load``, ``ensure_tools``) and the request encoders are
``modelport bench``'s, from ``modelport.server.bench``. Both tools run at a fixed concurrency for a fixed time
against one request body prepared here: the REST body uses the binary tensor extension (as ``tritonclient``
sends it), the gRPC body is a framed ``ModelInferRequest`` with ``raw_input_contents``. h2load does not read
gRPC trailers, so the caller checks one request with a real client first; failed REST requests are counted
from wrk's non-2xx line.
"""

from __future__ import annotations

import statistics
import threading
import time

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from modelport.server.bench import request_bodies as bench_bodies
from modelport.server.bench.generators import LoadResult, ensure_tools, percentile, run_h2load, run_wrk

from .bench_models import BenchModel

__all__ = ["LoadResult", "ensure_tools", "grpc_body", "raw_ort", "rest_body", "run_h2load", "run_wrk"]


def _row(model: BenchModel, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).random((1, *model.row_shape), dtype=np.float32)


def rest_body(model: BenchModel) -> tuple[bytes, int]:
    """An infer request with the binary tensor extension, and the length of its JSON header."""
    body = bench_bodies.rest_body({model.input_name: _row(model)}, [model.output_name], binary=True)
    assert body.header_length is not None  # binary bodies have a JSON header length
    return body.body, body.header_length


def grpc_body(model: BenchModel) -> bytes:
    """A length-prefixed gRPC message: ModelInferRequest with raw_input_contents."""
    request = bench_bodies.grpc_request(model.name, "", {model.input_name: _row(model)}, [model.output_name])
    return bench_bodies.grpc_message(request)


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
        rate=len(merged) / elapsed,
        p50_ms=statistics.median(merged),
        p90_ms=percentile(merged, 90),
        p99_ms=percentile(merged, 99),
        requests=len(merged),
        failures=0,
        duration_s=elapsed,
    )
