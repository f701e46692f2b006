"""Response cache: the latency of a hit against a miss, side by side on one server.

One server (``--cache-size`` 64 MiB) serves each benchmark model twice: ``M`` with ``response_cache`` and
``M_plain`` without. Each round sends, one request at a time over tritonclient HTTP, ``--requests`` requests
of each kind in turn: **hit** (one input, cached after a first request), **miss** (a new input each time, so
each is computed and stored) and **plain** (the uncached twin: what a request costs with no cache at all).
Rounds alternate the order of the kinds; the table gives the median over rounds of each round's median
latency, and the ratios. Bounded: ``--rounds`` x 3 x ``--requests`` requests per model.

    .venv/bin/python -m benchmarks.response_cache --rounds 5 --requests 100
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient

from tests.helpers.onnx_models import write_model
from tests.helpers.server_process import start_server

from .bench_models import BenchModel, cnn, mlp
from .serving_bench import CONFIGS

KINDS = ("hit", "miss", "plain")


def _request(model: BenchModel, values: np.ndarray) -> list[httpclient.InferInput]:
    feed = httpclient.InferInput(model.input_name, [1, *model.row_shape], "FP32")
    feed.set_data_from_numpy(values)
    return [feed]


def _median_latency(
    client: httpclient.InferenceServerClient, name: str, model: BenchModel, inputs: list[np.ndarray]
) -> float:
    times = []
    for values in inputs:
        started = time.perf_counter()
        client.infer(name, _request(model, values))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench(model: BenchModel, rounds: int, requests: int, counter: list[int]) -> list[str]:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((1, *model.row_shape)).astype(np.float32)

    def fresh() -> np.ndarray:
        counter[0] += 1
        values = base.copy()
        values.flat[0] = counter[0]  # a new input: a miss
        return values

    medians: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        config = {**CONFIGS[model.name], "workers": {"min": 1, "max": 1, "threads": 1}}
        write_model(root, model.name, model.proto, config={**config, "response_cache": {"enable": True}})
        write_model(root, f"{model.name}_plain", model.proto, config=config)
        with start_server(root, "--cache-size", str(64 << 20)) as server:
            client = httpclient.InferenceServerClient(server.http_url)
            try:
                client.infer(model.name, _request(model, base))  # cached from now on
                for name in (model.name, f"{model.name}_plain"):  # warm both sessions
                    _median_latency(client, name, model, [fresh() for _ in range(10)])
                for round_ in range(rounds):
                    order = KINDS if round_ % 2 == 0 else tuple(reversed(KINDS))
                    for kind in order:
                        name = f"{model.name}_plain" if kind == "plain" else model.name
                        inputs = [base] * requests if kind == "hit" else [fresh() for _ in range(requests)]
                        medians[kind].append(_median_latency(client, name, model, inputs))
            finally:
                client.close()
    hit, miss, plain = (statistics.median(medians[kind]) for kind in KINDS)
    return [
        f"| {model.name} | {hit * 1e3:.3f} | {miss * 1e3:.3f} | {plain * 1e3:.3f} | "
        f"{miss / hit:.2f}x | {miss / plain:.3f} |"
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    counter = [0]
    lines = [
        f"# Response cache, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{args.rounds} alternating rounds x {args.requests} sequential HTTP requests per kind; "
        "medians (ms).",
        "",
        "| model | hit | miss | no cache | miss / hit | miss / no cache |",
        "|---|---|---|---|---|---|",
    ]
    for model in (mlp(), cnn()):
        lines += bench(model, args.rounds, args.requests, counter)
    text = "\n".join(lines) + "\n"
    print(text)
    out = (
        args.out
        or Path(__file__).parent
        / "results"
        / f"response-cache-{datetime.datetime.now(datetime.UTC):%Y%m%d-%H%M}.md"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
