"""TorchServe's predictions API against the Open Inference Protocol: the latency of one request, side by side.

One server serves the MLP benchmark model (``serving_bench``'s config); one httpx client sends, one request
at a time, ``--requests`` requests of each kind in turn with the same row: **v2 json** (``POST
/v2/models/mlp/infer``, a JSON tensor), **ts json** (``POST /predictions/mlp``, the row as a JSON array) and
**ts npy** (the row as an ``.npy`` body). Rounds alternate the order of the kinds; the table gives the median
over rounds of each round's median latency, and each kind's ratio to v2 json. What it shows: the cost of
the TorchServe adapter (decode, answer shaping) over the same data-plane call. Bounded: ``--rounds`` x 3 x
``--requests`` requests.

    .venv/bin/python -m benchmarks.torchserve_api --rounds 5 --requests 200
"""

from __future__ import annotations

import argparse
import datetime
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.helpers.onnx_models import write_model
from tests.helpers.server_process import start_server

from .bench_models import mlp
from .serving_bench import CONFIGS

KINDS = ("v2 json", "ts json", "ts npy")


def _bodies(row: np.ndarray[Any, Any]) -> dict[str, tuple[str, bytes, str]]:
    """Each kind's path, body and content type."""
    import orjson

    npy = io.BytesIO()
    np.save(npy, row)
    v2 = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, row.size], "data": row.tolist()}]}
    return {
        "v2 json": ("/v2/models/mlp/infer", orjson.dumps(v2), "application/json"),
        "ts json": ("/predictions/mlp", orjson.dumps(row.tolist()), "application/json"),
        "ts npy": ("/predictions/mlp", npy.getvalue(), "application/x-npy"),
    }


def _median_latency(client: httpx.Client, path: str, body: bytes, content_type: str, requests: int) -> float:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.post(path, content=body, headers={"content-type": content_type})
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return statistics.median(times)


def bench(rounds: int, requests: int) -> list[str]:
    model = mlp()
    row = np.random.default_rng(0).standard_normal(model.row_shape).astype(np.float32)
    bodies = _bodies(row)
    medians: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_model(root, model.name, model.proto, config=CONFIGS[model.name])
        with start_server(root) as server, httpx.Client(base_url=f"http://{server.http_url}") as client:
            for kind in KINDS:  # warm up every route
                _median_latency(client, *bodies[kind], 20)
            for round_ in range(rounds):
                order = KINDS if round_ % 2 == 0 else tuple(reversed(KINDS))
                for kind in order:
                    medians[kind].append(_median_latency(client, *bodies[kind], requests))
    result = {kind: statistics.median(values) for kind, values in medians.items()}
    base = result["v2 json"]
    return [f"| {kind} | {result[kind] * 1e3:.3f} | {result[kind] / base:.2f} |" for kind in KINDS]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    now = datetime.datetime.now(datetime.UTC)
    lines = [
        f"# TorchServe predictions API vs Open Inference Protocol, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"mlp (64 features), {args.rounds} alternating rounds x {args.requests} sequential HTTP requests per "
        "kind; medians (ms).",
        "",
        "| kind | latency | / v2 json |",
        "|---|---|---|",
        *bench(args.rounds, args.requests),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    stamp = f"{now:%Y%m%d-%H%M}"
    out = args.out or Path(__file__).parent / "results" / f"torchserve-api-{stamp}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
