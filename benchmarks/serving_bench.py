"""Serving benchmark: wrk (REST) and h2load (gRPC) against the real server, with raw ONNX Runtime alongside.

    .venv/bin/python -m benchmarks.serving_bench [--seconds 5] [--concurrency 1 8 32]

Serves a 64->256->256->10 MLP and a compute-bound CNN from a temporary repository, drives each protocol at
each concurrency, and measures raw in-process ONNX Runtime in the same run. Reports inferences/s, p50/p99
latency and the server's CPU seconds per request (the server process and all its descendants: forkserver and
workers, read with psutil), as a markdown table in ``benchmarks/results/``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import psutil
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.helpers.onnx_models import write_model
from tests.helpers.server_process import ServerProcess, start_server

from .bench_models import BenchModel, cnn, mlp
from .loadgen import LoadResult, ensure_tools, grpc_body, raw_ort, rest_body, run_h2load, run_wrk

TRITON_REST_C8 = 3249.0  # Triton, Python backend + ONNX Runtime, same MLP, concurrency 8, these machines
TRITON_GRPC_C8 = 2760.0
CORES = len(os.sched_getaffinity(0))

CONFIGS: dict[str, dict[str, Any]] = {
    # The MLP costs microseconds: one worker; the batcher gathers whatever queued while it was busy.
    "mlp": {
        "max_batch_size": 64,
        "dynamic_batching": {"max_queue_delay_us": 0, "max_queue_size": 4096},
        "workers": {"min": 1, "max": 1, "threads": 1},
    },
    # The CNN is compute-bound: one single-threaded worker per core.
    "cnn": {
        "max_batch_size": 16,
        "dynamic_batching": {"max_queue_delay_us": 0, "max_queue_size": 4096},
        "workers": {"min": CORES, "max": CORES, "threads": 1},
    },
}


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and every live descendant."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def check_answers(server: ServerProcess, model: BenchModel) -> None:
    """One request per protocol with the real clients, compared with ONNX Runtime (h2load cannot check)."""
    x = np.random.default_rng(0).random((1, *model.row_shape), dtype=np.float32)
    want = ort.InferenceSession(model.proto.SerializeToString()).run(None, {model.input_name: x})[0]
    http = httpclient.InferenceServerClient(server.http_url)
    tensor = httpclient.InferInput(model.input_name, list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    got = http.infer(model.name, [tensor]).as_numpy(model.output_name)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    gtensor = grpcclient.InferInput(model.input_name, list(x.shape), "FP32")
    gtensor.set_data_from_numpy(x)
    got = grpc.infer(model.name, [gtensor]).as_numpy(model.output_name)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def measure(server: ServerProcess, model: BenchModel, protocol: str, concurrency: int, seconds: float) -> Any:
    pid = int(server.ports["pid"])
    before = tree_cpu_seconds(pid)
    if protocol == "REST":
        body, header_length = rest_body(model)
        url = f"http://{server.http_url}/v2/models/{model.name}/infer"
        result = run_wrk(url, body, header_length, concurrency=concurrency, seconds=seconds)
    else:
        url = f"http://{server.grpc_url}/inference.GRPCInferenceService/ModelInfer"
        result = run_h2load(url, grpc_body(model), concurrency=concurrency, seconds=seconds)
    cpu = tree_cpu_seconds(pid) - before
    return result, cpu / max(1, result.requests)


def row(label: str, result: LoadResult, cpu_per_request: float | None) -> str:
    cpu = f"{cpu_per_request * 1e3:.3f}" if cpu_per_request is not None else "-"
    rate, p50, p99 = f"{result.rate:,.0f}", f"{result.p50_ms:.2f}", f"{result.p99_ms:.2f}"
    return f"| {label} | {rate} | {p50} | {p99} | {cpu} | {result.failures} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    ensure_tools()
    models = [mlp(), cnn()]
    lines = [
        f"# Serving benchmark {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{CORES} cores, load generator on the same machine (wrk -t1, h2load -t1 -m1), "
        f"{args.seconds:g} s per run, batch 1 per request. load average at start: {os.getloadavg()[0]:.2f}.",
        "CPU ms/req: the server process and its descendants (forkserver, workers), psutil.",
        "",
    ]
    results: dict[tuple[str, str, int], LoadResult] = {}
    raw: dict[str, LoadResult] = {}
    with tempfile.TemporaryDirectory(prefix="modelport-bench-") as scratch:
        repository = Path(scratch)
        for model in models:
            write_model(repository, model.name, model.proto, config=CONFIGS[model.name])
        with start_server(repository, "--log-level", "warning") as server:
            for model in models:
                check_answers(server, model)
                lines += [
                    f"## {model.name} ({CONFIGS[model.name]['workers']['max']} worker(s) x 1 thread)",
                    "",
                    "| run | inferences/s | p50 ms | p99 ms | CPU ms/req | failed |",
                    "|---|---:|---:|---:|---:|---:|",
                ]
                measure(server, model, "REST", 8, 1.0)  # warm-up
                for protocol in ("REST", "gRPC"):
                    for concurrency in args.concurrency:
                        result, cpu = measure(server, model, protocol, concurrency, args.seconds)
                        results[(model.name, protocol, concurrency)] = result
                        lines.append(row(f"{protocol} c={concurrency}", result, cpu))
                        print(lines[-1], flush=True)
                baselines = [(1, CORES), (CORES, 1)] if model.name == "cnn" else [(1, 1)]
                for sessions, threads in baselines:
                    result = raw_ort(model, sessions=sessions, threads=threads, seconds=args.seconds)
                    label = f"raw ORT in-process, {sessions} session(s) x {threads} thread(s)"
                    raw[model.name] = max(raw.get(model.name, result), result, key=lambda r: r.rate)
                    lines.append(row(label, result, None))
                    print(lines[-1], flush=True)
                lines.append("")
    lines += ["## Ratios", ""]
    if ("mlp", "REST", 8) in results:
        rest, grpc = results[("mlp", "REST", 8)].rate, results[("mlp", "gRPC", 8)].rate
        lines.append(
            f"- MLP, concurrency 8: REST {rest:,.0f}/s = {rest / TRITON_REST_C8:.2f}x Triton's 3,249; "
            f"gRPC {grpc:,.0f}/s = {grpc / TRITON_GRPC_C8:.2f}x Triton's 2,760 (target 1.5x)."
        )
    top = max(args.concurrency)
    if ("cnn", "REST", top) in results:
        best = max(results[("cnn", p, top)].rate for p in ("REST", "gRPC"))
        lines.append(
            f"- CNN at concurrency {top}: {best:,.0f}/s = {best / raw['cnn'].rate:.2f}x raw ONNX Runtime "
            f"with the same {CORES} threads ({raw['cnn'].rate:,.0f}/s) (target 0.9x)."
        )
    text = "\n".join(lines) + "\n"
    out = (
        args.out
        or Path(__file__).parent / "results" / f"serving-{datetime.datetime.now(datetime.UTC):%Y%m%d-%H%M}.md"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
