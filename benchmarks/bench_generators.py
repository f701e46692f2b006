"""Is ``modelport bench``'s load generator the bottleneck? Native and Python fallback side by side.

    .venv/bin/python -m benchmarks.bench_generators [--model mlp] [--concurrency 8] [--seconds 2] [--rounds 3]

Serves ``models/`` once and drives one model with the generators ``modelport bench`` can pick, for each
protocol: wrk against the in-process Python generator over REST (binary), h2load against it over gRPC, the
two alternating round by round. Per run: requests/s and the generator's own CPU per request (its process
for Python, the child process for wrk/h2load); the table has the medians and the ratio native / Python.
A generator that needs more CPU per request than the server shares the machine's cores with it and caps the
measured rate. Noisy on a shared machine: compare rows of one run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import resource
import statistics
from pathlib import Path

from modelport.server.bench.endpoints import Endpoint, GrpcEndpoint, HttpEndpoint
from modelport.server.bench.load_plan import make_plan
from modelport.server.bench.signature import generated_tensors, signature_from_metadata
from modelport.server.bench.sweep import Runner, choose_generator

from tests.helpers.server_process import start_server

MODELS = Path(__file__).resolve().parents[1] / "models"


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _measure(runner: Runner, native: bool, concurrency: int, seconds: float) -> tuple[float, float]:
    """Requests/s and the generator's CPU microseconds per request of one run."""
    who = resource.RUSAGE_CHILDREN if native else resource.RUSAGE_SELF
    before = _cpu(who)
    result = runner(concurrency, seconds)
    return result.rate, (_cpu(who) - before) / max(result.requests, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with start_server(MODELS) as server:
        for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
            endpoint: Endpoint = HttpEndpoint(url) if protocol == "http" else GrpcEndpoint(url)
            signature = signature_from_metadata(endpoint.model_metadata(args.model, ""))
            plan = make_plan(endpoint, signature, generated_tensors(signature, batch=1), "", binary=True)
            plan.check()
            native, native_name, _ = choose_generator("auto", protocol, plan, install=True)
            python, _, _ = choose_generator("python", protocol, plan, install=False)
            runs: dict[str, list[tuple[float, float]]] = {"native": [], "python": []}
            for index in range(args.rounds):
                order = [("native", native), ("python", python)]
                for kind, runner in order if index % 2 == 0 else order[::-1]:
                    runs[kind].append(_measure(runner, kind == "native", args.concurrency, args.seconds))
            endpoint.close()
            medians = {
                kind: (statistics.median(r for r, _ in values), statistics.median(c for _, c in values))
                for kind, values in runs.items()
            }
            rows.append((protocol, native_name, medians))
    print(f"model {args.model}, concurrency {args.concurrency}, {args.seconds:g} s x {args.rounds} rounds")
    print(
        "| protocol | generator | req/s | its CPU us/req | Python req/s | Python CPU us/req | req/s ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for protocol, name, medians in rows:
        (rate, cpu), (py_rate, py_cpu) = medians["native"], medians["python"]
        cells = [protocol, name, f"{rate:,.0f}", f"{cpu:.0f}", f"{py_rate:,.0f}", f"{py_cpu:.0f}"]
        print("| " + " | ".join(cells) + f" | {rate / py_rate:.2f}x |")


if __name__ == "__main__":
    main()
