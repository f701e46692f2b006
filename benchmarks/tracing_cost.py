"""What tracing costs per request: off, off with a ``traceparent`` the client sent, and on at the default
trace rate (1000) and at rate 1 (every request traced and exported by OTLP/HTTP to a receiver process),
side by side in one run.

    .venv/bin/python -m benchmarks.tracing_cost [--protocol rest|grpc|both] [--rounds 7] [--seconds 1.5]
                                                [--clients 4] [--model mlp|cnn]

One model manager serves three data planes: one without ``--trace-endpoint`` (what every server has
unless an operator sets one), and two with it, at trace rate 1000 and 1. The clients call the REST ASGI app
or the gRPC servicer in-process (no listener, no load generator: see ``benchmarks/inprocess.py``), so the
server's own work per request is what is measured. The conditions alternate round by round (the order
reversed every other round); each round gives requests/s and this process's CPU per request (the span
exporter's thread included). The table has the medians and each condition's ratio to "off". A build
without the tracing hook cannot be made from the same tree, so "off" is the baseline: the hook's cost when
off is one attribute read, and "off + traceparent" shows that a client's header changes nothing then.
Results are printed and written to benchmarks/results/tracing_cost.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from modelport.server.app import make_executor
from modelport.server.dataplane import DataPlane
from modelport.server.observability.metrics import ServerMetrics
from modelport.server.repository.folders import Repository
from modelport.server.repository.model_manager import ModelManager
from modelport.server.settings import ServerSettings

from tests.helpers.onnx_models import write_model
from tests.helpers.otlp_receiver import otlp_receiver

from . import inprocess
from .bench_models import BenchModel, cnn, mlp
from .serving_bench import CONFIGS

Call = inprocess.Call
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# Each condition: the data plane it calls (its settings) and whether the client sends a traceparent.
CONDITIONS = {
    "off": ("off", False),
    "off + traceparent": ("off", True),
    "on, rate 1000 (default)": ("sampled", True),
    "on, rate 1 (every one)": ("every", True),
}
RESULTS = Path(__file__).resolve().parent / "results"


def grpc_call(dataplane: DataPlane, model: BenchModel, traceparent: str | None) -> Call:
    return inprocess.grpc_call(dataplane, model, (("traceparent", traceparent),) if traceparent else ())


def rest_call(
    dataplane: DataPlane, settings: ServerSettings, model: BenchModel, traceparent: str | None
) -> Call:
    extra = ((b"traceparent", traceparent.encode()),) if traceparent else ()
    return inprocess.rest_call(dataplane, settings, model, extra)


@dataclasses.dataclass
class Round:
    rate: float  # requests/s
    cpu_us: float  # this process's CPU per request


async def run_round(call: Call, clients: int, seconds: float) -> Round:
    count = 0
    stop = time.monotonic() + seconds

    async def client() -> None:
        nonlocal count
        while time.monotonic() < stop:
            await call()
            count += 1

    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed, used = time.monotonic() - started, time.process_time() - cpu
    return Round(count / elapsed, used / count * 1e6)


async def measure(args: argparse.Namespace, repository: Path, model: BenchModel, receiver_url: str) -> str:
    off = ServerSettings(repository=repository)
    sampled = dataclasses.replace(off, trace_endpoint=receiver_url)
    every = dataclasses.replace(sampled, trace_rate=1)
    metrics = ServerMetrics()
    manager = ModelManager(
        repository=Repository(repository),
        settings=off,
        make_executor=functools.partial(make_executor, metrics=metrics, instance_kind="thread"),
        metrics=metrics,
    )
    await manager.start()
    planes = {
        name: DataPlane(manager=manager, settings=settings)
        for name, settings in (("off", off), ("sampled", sampled), ("every", every))
    }
    lines = []
    try:
        for protocol in ("rest", "grpc") if args.protocol == "both" else (args.protocol,):

            def make(plane: str, header: bool, protocol: str = protocol) -> Call:
                traceparent = TRACEPARENT if header else None
                if protocol == "grpc":
                    return grpc_call(planes[plane], model, traceparent)
                return rest_call(planes[plane], off, model, traceparent)

            calls = {name: make(*how) for name, how in CONDITIONS.items()}
            for call in calls.values():  # warm up every path
                for _ in range(50):
                    await call()
            rounds: dict[str, list[Round]] = {name: [] for name in CONDITIONS}
            for index in range(args.rounds):
                order = list(CONDITIONS) if index % 2 == 0 else list(reversed(CONDITIONS))
                for name in order:
                    rounds[name].append(await run_round(calls[name], args.clients, args.seconds))
            base_rate = statistics.median(r.rate for r in rounds["off"])
            base_cpu = statistics.median(r.cpu_us for r in rounds["off"])
            lines.append(
                f"{model.name} {protocol}, {args.clients} clients, {args.rounds} alternating rounds of "
                f"{args.seconds} s (medians):"
            )
            lines.append(
                f"  {'condition':<24} {'requests/s':>11} {'ratio':>6} {'CPU us/req':>11} {'ratio':>6}"
            )
            for name in CONDITIONS:
                rate = statistics.median(r.rate for r in rounds[name])
                cpu = statistics.median(r.cpu_us for r in rounds[name])
                ratios = f"{rate / base_rate:>6.3f} {cpu:>11.1f} {cpu / base_cpu:>6.3f}"
                lines.append(f"  {name:<24} {rate:>11,.0f} {ratios}")
    finally:
        for plane in planes.values():
            await plane.tracing.close()
        await manager.close(drain_timeout=2)
    return "\n".join(lines)


def receive() -> None:
    """The receiver's own process (``--receiver``), so decoding the exported spans costs the measured
    process nothing: prints its URL, then, once stdin closes, the spans it got."""
    with otlp_receiver() as receiver:
        print(receiver.url, flush=True)
        sys.stdin.read()
        spans = receiver.spans()
    roots = [s for s in spans if s.name == "infer"]
    parented = sum(1 for s in roots if s.trace_id == TRACEPARENT.split("-")[1])
    print(f"  exported: {len(spans):,} spans, {len(roots):,} requests, {parented:,} under the client's trace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=["rest", "grpc", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        receive()
        return
    command = [sys.executable, "-m", "benchmarks.tracing_cost", "--receiver"]
    receiver = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    try:
        url = receiver.stdout.readline().strip()
        with tempfile.TemporaryDirectory(prefix="modelport-tracing-") as scratch:
            repository = Path(scratch)
            model = mlp() if args.model == "mlp" else cnn()
            write_model(repository, model.name, model.proto, config=CONFIGS[model.name])
            report = uvloop.run(measure(args, repository, model, url))
    finally:
        exported, _ = receiver.communicate(timeout=60)
    report += "\n" + exported.strip()
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tracing_cost.txt").write_text(report + "\n")


if __name__ == "__main__":
    main()
