"""Does an example model of ``models/`` gain from dynamic batching? Paired runs with and without it.

    .venv/bin/python -m benchmarks.example_batching [--model digits] [--delays 0 500] [--clients 1 8 16]
                                                    [--seconds 3]

Serves copies of ``models/``: one per ``--delays`` value (``dynamic_batching.max_queue_delay_us``) and one
without ``dynamic_batching`` (every request runs alone), one server at a time, and drives the model over
gRPC with tritonclient at each client count (``N`` requests in flight, single-row). Reports requests/s, the
server's CPU per request (its process and descendants, with psutil) and the mean batch of the run (from the
model's statistics). Noisy on a shared machine: compare rows of one run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import tritonclient.grpc as grpcclient

from tests.helpers.server_process import start_server
from tests.helpers.tensors import grpc_zero_row

MODELS = Path(__file__).resolve().parents[1] / "models"
_BATCHING = re.compile(r"^dynamic_batching:.*\n", re.MULTILINE)


def _cpu_seconds(pid: int) -> float:
    process = psutil.Process(pid)
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a worker that ended meanwhile
            total += sum(child.cpu_times()[:2])
    return total


def _repository(root: Path, delay_us: int | None) -> Path:
    """A copy of ``models/`` with every model's delay set to ``delay_us`` (None: no dynamic batching)."""
    target = root / ("none" if delay_us is None else f"delay-{delay_us}")
    shutil.copytree(MODELS, target)
    for config in target.glob("*/config.yaml"):
        text = _BATCHING.sub("", config.read_text(encoding="utf-8"))
        if delay_us is not None:
            text = f"dynamic_batching: {{max_queue_delay_us: {delay_us}}}\n{text}"
        config.write_text(text, encoding="utf-8")
    return target


def _stats(client: grpcclient.InferenceServerClient, model: str) -> tuple[int, int]:
    stats: dict[str, Any] = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])


def _drive(url: str, pid: int, model: str, clients: int, seconds: float) -> tuple[float, float, float]:
    """Requests/s, server CPU microseconds per request and mean batch with ``clients`` requests in flight."""
    client = grpcclient.InferenceServerClient(url)
    inputs = grpc_zero_row(MODELS / model)
    slots = threading.Semaphore(clients)
    done = [0]

    def answered(result: object, error: object) -> None:
        done[0] += 1
        slots.release()

    try:
        for _ in range(50):  # warm up
            client.infer(model, inputs)
        rows_before, runs_before = _stats(client, model)
        cpu_before, started = _cpu_seconds(pid), time.monotonic()
        while time.monotonic() - started < seconds:
            slots.acquire()
            client.async_infer(model, inputs, callback=answered)
        for _ in range(clients):
            slots.acquire()
        elapsed, cpu = time.monotonic() - started, _cpu_seconds(pid) - cpu_before
        rows, runs = _stats(client, model)
    finally:
        client.close()
    return done[0] / elapsed, cpu / done[0] * 1e6, (rows - rows_before) / max(1, runs - runs_before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="digits")
    parser.add_argument("--delays", type=int, nargs="+", default=[0, 500])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--seconds", type=float, default=3.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelport-batching-") as scratch:
        setups: list[tuple[str, int | None]] = [(f"delay {d} us", d) for d in arguments.delays]
        setups.append(("no batching", None))
        print("| setup | clients | requests/s | server CPU us/request | mean batch |")
        print("|---|---|---|---|---|")
        for label, delay in setups:
            with start_server(_repository(Path(scratch), delay)) as server:
                for clients in arguments.clients:
                    rate, cpu_us, batch = _drive(
                        server.grpc_url, server.process.pid, arguments.model, clients, arguments.seconds
                    )
                    print(f"| {label} | {clients} | {rate:.0f} | {cpu_us:.0f} | {batch:.2f} |", flush=True)


if __name__ == "__main__":
    main()
