"""Serving benchmark: wrk (REST) and h2load (gRPC) against the real server, with raw ONNX Runtime alongside.

    .venv/bin/python -m benchmarks.serving_bench [--seconds 5] [--repeat 3] [--concurrency 1 8 32]

Serves a 64->256->256->10 MLP and a compute-bound CNN from a temporary repository, drives each protocol at
each concurrency, and measures raw in-process ONNX Runtime in the same run. Every run is repeated
``--repeat`` times (interleaved, so a burst of load elsewhere hits one repetition, not one row) and each row
reports the median by inferences/s; the ratios are computed from those medians. Reports inferences/s, p50/p99
latency, the server's CPU seconds per request (split into the front-end process and its descendants:
forkserver and workers, read with psutil) and the mean batch the workers ran (from the model's statistics),
as a markdown table in ``benchmarks/results/``. Before starting it waits (up to ``--wait-load`` seconds) for
the 1-minute load average to fall below ``--max-load``. Not part of the test suite.

The CNN baseline ("the same total threads"): the server runs the CNN on ``CORES`` single-threaded workers,
so raw ONNX Runtime runs ``CORES`` Python threads each with its own single-threaded session (batch 1, as the
clients send); one session with ``CORES`` intra-op threads is measured too and the better of the two is the
reference.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import psutil
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.helpers.onnx_models import write_model
from tests.helpers.server_process import ServerProcess, start_server

from .bench_models import BenchModel, cnn, mlp
from .floors import floor_server
from .loadgen import LoadResult, ensure_tools, grpc_body, raw_ort, rest_body, run_h2load, run_wrk

CORES = len(os.sched_getaffinity(0))

CONFIGS: dict[str, dict[str, Any]] = {
    # The MLP costs microseconds: one worker; the batcher gathers whatever queued while it was busy.
    "mlp": {
        "max_batch_size": 64,
        "dynamic_batching": {"max_queue_delay_us": 0, "max_queue_size": 4096},
        "workers": {"min": 1, "max": 1, "threads": 1},
    },
    # The CNN is compute-bound: one single-threaded worker per core. ONNX Runtime's CPU per image hardly
    # depends on the batch (one thread, medians of 5: 8.2 ms at batch 1, 7.9 at 2 and 4, 8.1 at 8), while the
    # front end's cost per request falls with it: at concurrency 32, batches of 8 gave 0.93x and 0.96x raw ORT
    # on REST against 0.88x and 0.92x with batches of 4.
    "cnn": {
        "max_batch_size": 8,
        "dynamic_batching": {"max_queue_delay_us": 0, "max_queue_size": 4096},
        "workers": {"min": CORES, "max": CORES, "threads": 1},
    },
}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` alone (the front end: event loop, HTTP and gRPC)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


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


@dataclass(frozen=True)
class Run:
    """One load run with the server's CPU per request (front end, workers) and the mean batch executed."""

    load: LoadResult
    front_ms: float
    workers_ms: float
    batch: float


def _counts(server: ServerProcess, model: BenchModel) -> tuple[int, int]:
    stats = httpx.get(f"http://{server.http_url}/v2/models/{model.name}/stats", timeout=10).json()
    entry = stats["model_stats"][0]
    return int(entry["inference_count"]), int(entry["execution_count"])


def measure(server: ServerProcess, model: BenchModel, protocol: str, concurrency: int, seconds: float) -> Run:
    pid = int(server.ports["pid"])
    front_before, all_before = process_cpu_seconds(pid), tree_cpu_seconds(pid)
    inferences_before, executions_before = _counts(server, model)
    if protocol == "REST":
        body, header_length = rest_body(model)
        url = f"http://{server.http_url}/v2/models/{model.name}/infer"
        result = run_wrk(url, body, header_length, concurrency=concurrency, seconds=seconds)
    else:
        url = f"http://{server.grpc_url}/inference.GRPCInferenceService/ModelInfer"
        result = run_h2load(url, grpc_body(model), concurrency=concurrency, seconds=seconds)
    front, total = process_cpu_seconds(pid) - front_before, tree_cpu_seconds(pid) - all_before
    inferences, executions = (
        a - b for a, b in zip(_counts(server, model), (inferences_before, executions_before), strict=True)
    )
    n = max(1, result.requests)
    return Run(result, front / n * 1e3, (total - front) / n * 1e3, inferences / max(1, executions))


def median_run(runs: list[Run]) -> Run:
    """The run with the median inferences/s (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r.load.rate)
    return ordered[(len(ordered) - 1) // 2]


def row(label: str, result: LoadResult, run: Run | None, spread: list[float]) -> str:
    cpu = (
        f"{run.front_ms + run.workers_ms:.3f} | {run.front_ms:.3f} | {run.workers_ms:.3f} | {run.batch:.2f}"
        if run is not None
        else "- | - | - | -"
    )
    rate, p50, p99 = f"{result.rate:,.0f}", f"{result.p50_ms:.2f}", f"{result.p99_ms:.2f}"
    runs = " / ".join(f"{r:,.0f}" for r in spread)
    return f"| {label} | {rate} | {runs} | {p50} | {p99} | {cpu} | {result.failures} |"


def wait_for_quiet(max_load: float, timeout: float) -> float:
    """Wait until the 1-minute load average is below ``max_load`` (at most ``timeout`` s); return it."""
    deadline = time.monotonic() + timeout
    while (load := os.getloadavg()[0]) >= max_load and time.monotonic() < deadline:
        time.sleep(5)
    return load


def bench_model(
    server: ServerProcess, model: BenchModel, args: argparse.Namespace
) -> tuple[list[str], dict[tuple[str, int], LoadResult], LoadResult]:
    """Table rows for one model, the median result per (protocol, concurrency), and the raw ORT reference."""
    lines: list[str] = []
    medians: dict[tuple[str, int], LoadResult] = {}
    reference: LoadResult | None = None
    measure(server, model, "REST", 8, 1.0)  # warm-up
    cells = [(p, c) for p in ("REST", "gRPC") for c in args.concurrency]
    baselines = [(1, CORES), (CORES, 1)] if model.name == "cnn" else [(1, 1)]
    runs: dict[tuple[str, int], list[Run]] = {cell: [] for cell in cells}
    raws: dict[tuple[int, int], list[LoadResult]] = {b: [] for b in baselines}
    for _ in range(args.repeat):
        for protocol, concurrency in cells:
            runs[(protocol, concurrency)].append(measure(server, model, protocol, concurrency, args.seconds))
        for sessions, threads in baselines:
            raws[(sessions, threads)].append(
                raw_ort(model, sessions=sessions, threads=threads, seconds=args.seconds)
            )
    for protocol, concurrency in cells:
        got = runs[(protocol, concurrency)]
        mid = median_run(got)
        medians[(protocol, concurrency)] = mid.load
        lines.append(row(f"{protocol} c={concurrency}", mid.load, mid, [r.load.rate for r in got]))
        print(lines[-1], flush=True)
    for (sessions, threads), results in raws.items():
        mid_raw = sorted(results, key=lambda r: r.rate)[(len(results) - 1) // 2]
        label = f"raw ORT in-process, {sessions} session(s) x {threads} thread(s), batch 1"
        reference = mid_raw if reference is None or mid_raw.rate > reference.rate else reference
        lines.append(row(label, mid_raw, None, [r.rate for r in results]))
        print(lines[-1], flush=True)
    assert reference is not None
    return lines, medians, reference


def bench_floors(args: argparse.Namespace) -> tuple[list[str], dict[str, LoadResult]]:
    """Each protocol's floor (see floors.py) at concurrency 8 with the MLP's request body, median of runs."""
    model = mlp()
    body, header_length = rest_body(model)
    lines = [
        "## Protocol floors (benchmarks/floors.py: the same stack answering a fixed body, no model)",
        "",
        "| run | inferences/s (median) | all runs | p50 ms | p99 ms | server CPU ms/req | "
        "front end | workers | batch | failed |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    medians: dict[str, LoadResult] = {}
    for protocol in ("REST", "gRPC"):
        with floor_server(protocol.lower()) as address:
            results = []
            for _ in range(args.repeat):
                if protocol == "REST":
                    url = f"http://{address}/v2/models/{model.name}/infer"
                    results.append(run_wrk(url, body, header_length, concurrency=8, seconds=args.seconds))
                else:
                    url = f"http://{address}/inference.GRPCInferenceService/ModelInfer"
                    results.append(run_h2load(url, grpc_body(model), concurrency=8, seconds=args.seconds))
        mid = sorted(results, key=lambda r: r.rate)[(len(results) - 1) // 2]
        medians[protocol] = mid
        lines.append(row(f"{protocol} floor c=8", mid, None, [r.rate for r in results]))
        print(lines[-1], flush=True)
    return [*lines, ""], medians


def ratio_lines(
    medians: dict[tuple[str, str, int], LoadResult],
    raw: dict[str, LoadResult],
    floors: dict[str, LoadResult],
    *,
    top: int,
) -> list[str]:
    """The closing section: each target's ratio, from the medians."""
    lines = ["## Ratios (medians)", ""]
    if ("mlp", "REST", 8) in medians:
        rest, grpc = medians[("mlp", "REST", 8)].rate, medians[("mlp", "gRPC", 8)].rate
        # No peer figure is typed in here: a ratio to Triton needs Triton measured in the same run.
        lines.append(f"- MLP, concurrency 8: REST {rest:,.0f}/s, gRPC {grpc:,.0f}/s.")
    for protocol, floor in floors.items():
        if ("mlp", protocol, 8) in medians:
            rate = medians[("mlp", protocol, 8)].rate
            lines.append(
                f"- MLP {protocol} at concurrency 8 reached {rate / floor.rate:.0%} of the {protocol} floor "
                f"({floor.rate:,.0f}/s: the protocol stack alone, answering without a model)."
            )
    if ("cnn", "REST", top) in medians:
        for protocol in ("REST", "gRPC"):
            rate = medians[("cnn", protocol, top)].rate
            lines.append(
                f"- CNN {protocol} at concurrency {top}: {rate:,.0f}/s = {rate / raw['cnn'].rate:.2f}x raw "
                f"ONNX Runtime with the same {CORES} threads ({raw['cnn'].rate:,.0f}/s) (target 0.9x)."
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the row is their median")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for a 1-minute load below this")
    parser.add_argument("--wait-load", type=float, default=300.0, help="longest wait for --max-load (s)")
    parser.add_argument("--models", nargs="+", choices=["mlp", "cnn"], default=["mlp", "cnn"])
    parser.add_argument("--cnn-max-batch", type=int, default=None, help="override the CNN's max_batch_size")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-floors", action="store_true", help="skip the protocol floor rows")
    args = parser.parse_args()
    ensure_tools()
    if args.cnn_max_batch is not None:
        CONFIGS["cnn"]["max_batch_size"] = args.cnn_max_batch
    models = [build() for build in (mlp, cnn) if build.__name__ in args.models]
    load = wait_for_quiet(args.max_load, args.wait_load)
    lines = [
        f"# Serving benchmark {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{CORES} cores, load generator on the same machine (wrk -t1 -cC, h2load -t1 -cC -m1: C connections "
        f"of one request each), {args.seconds:g} s per run, batch 1 per request, median of {args.repeat} "
        f"interleaved runs (all runs' rates listed). 1-minute load average at start: {load:.2f}.",
        "CPU ms/req: server = front end (the server process) + workers (its descendants), psutil. "
        "batch: mean rows per executed batch (model statistics).",
        "",
    ]
    medians: dict[tuple[str, str, int], LoadResult] = {}
    raw: dict[str, LoadResult] = {}
    with tempfile.TemporaryDirectory(prefix="modelport-bench-") as scratch:
        repository = Path(scratch)
        for model in models:
            write_model(repository, model.name, model.proto, config=CONFIGS[model.name])
        with start_server(repository, "--log-level", "warning") as server:
            for model in models:
                check_answers(server, model)
                workers = CONFIGS[model.name]["workers"]
                lines += [
                    f"## {model.name} ({workers['max']} worker(s) x {workers['threads']} thread(s), "
                    f"max_batch_size {CONFIGS[model.name]['max_batch_size']})",
                    "",
                    "| run | inferences/s (median) | all runs | p50 ms | p99 ms | server CPU ms/req | "
                    "front end | workers | batch | failed |",
                    "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
                ]
                rows, got, raw[model.name] = bench_model(server, model, args)
                lines += rows
                medians.update({(model.name, p, c): r for (p, c), r in got.items()})
                lines.append("")
    floors: dict[str, LoadResult] = {}
    if not args.no_floors:
        floor_lines, floors = bench_floors(args)
        lines += floor_lines
    lines += ratio_lines(medians, raw, floors, top=max(args.concurrency))
    lines.append(f"- 1-minute load average at the end: {os.getloadavg()[0]:.2f}.")
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
