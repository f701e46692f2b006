"""System shared memory against tensors in the request, side by side: the same model, the same server, the
same tensor, alternating rounds.

    .venv/bin/python -m benchmarks.shared_memory [--mib 1 16] [--rounds 5] [--requests 20]
        [--instance-kind thread|process] [--out benchmarks/results/shared_memory.json]

Starts the real server over a temporary repository with an FP32 identity model (``INPUT0`` -> ``OUTPUT0``,
``[-1, 1024]``, no batching delay). For each tensor size, and per round in turn, four ways of sending one
input and getting the output back with ``tritonclient``, each as ``--requests`` sequential requests:
REST binary tensor extension, REST with both tensors in shared memory, gRPC ``raw_input_contents``, gRPC with
both in shared memory (the client writes the input into its region before each request and reads the output
from it after, so the comparison includes the client's own copies). It prints the median latency per request
of each way over the rounds, and the ratio of each shared-memory way to the same protocol's in-request way.
Not part of the test suite: the machines are shared and noisy, so only ratios from one run are quoted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm

from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import start_server

WIDTH = 1024
MIB = 2**20


def _ways(http: Any, grpc: Any, array: np.ndarray[Any, Any]) -> tuple[dict[str, Callable[[], None]], Any]:
    """One request of each way for ``array``; and the cleanup that unregisters and destroys the regions."""
    nbytes = array.nbytes
    tag = uuid.uuid4().hex[:8]
    regions = {}
    for side in ("in", "out"):
        name, key = f"bench_{side}_{tag}", f"/mp_bench_{side}_{tag}"
        regions[side] = (name, shm.create_shared_memory_region(name, key, nbytes))
        http.register_system_shared_memory(name, key, nbytes)
    (in_name, in_handle), (out_name, out_handle) = regions["in"], regions["out"]
    shape = list(array.shape)

    def in_request(module: Any, client: Any) -> Callable[[], None]:
        def run() -> None:
            tensor = module.InferInput("INPUT0", shape, "FP32")
            tensor.set_data_from_numpy(array)
            result = client.infer("fp32", [tensor], outputs=[module.InferRequestedOutput("OUTPUT0")])
            assert result.as_numpy("OUTPUT0").shape == array.shape

        return run

    def in_shared_memory(module: Any, client: Any) -> Callable[[], None]:
        def run() -> None:
            shm.set_shared_memory_region(in_handle, [array])
            tensor = module.InferInput("INPUT0", shape, "FP32")
            tensor.set_shared_memory(in_name, nbytes)
            wanted = module.InferRequestedOutput("OUTPUT0")
            wanted.set_shared_memory(out_name, nbytes)
            client.infer("fp32", [tensor], outputs=[wanted])
            assert np.array(shm.get_contents_as_numpy(out_handle, np.float32, shape)).shape == array.shape

        return run

    def cleanup() -> None:
        http.unregister_system_shared_memory()
        for _, handle in regions.values():
            shm.destroy_shared_memory_region(handle)

    ways = {
        "REST binary": in_request(httpclient, http),
        "REST shared memory": in_shared_memory(httpclient, http),
        "gRPC raw": in_request(grpcclient, grpc),
        "gRPC shared memory": in_shared_memory(grpcclient, grpc),
    }
    return ways, cleanup


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=float, nargs="+", default=[1.0, 16.0], help="tensor sizes in MiB")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="sequential requests per way and round")
    parser.add_argument("--instance-kind", choices=["thread", "process"], default="thread")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/shared_memory.json"))
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_model(root, "fp32", identity_model("FP32", (-1, WIDTH)), config={"max_batch_size": 0})
        server_args = ("--instance-kind", args.instance_kind, "--http-max-body-bytes", str(256 * MIB))
        with start_server(root, *server_args) as server:
            http = httpclient.InferenceServerClient(server.http_url, network_timeout=120.0)
            grpc = grpcclient.InferenceServerClient(server.grpc_url)
            for mib in args.mib:
                rows = max(1, int(mib * MIB) // (WIDTH * 4))
                array = np.random.default_rng(0).standard_normal((rows, WIDTH)).astype(np.float32)
                ways, cleanup = _ways(http, grpc, array)
                timings: dict[str, list[float]] = {name: [] for name in ways}
                try:
                    for run in ways.values():  # warm up each way once
                        run()
                    for _ in range(args.rounds):
                        for name, run in ways.items():
                            for _ in range(args.requests):
                                started = time.perf_counter()
                                run()
                                timings[name].append(time.perf_counter() - started)
                finally:
                    cleanup()
                medians = {name: statistics.median(values) * 1e3 for name, values in timings.items()}
                size = f"{array.nbytes / MIB:.1f} MiB FP32"
                print(f"\n{size}, {args.instance_kind} instances, median ms/request:")
                for name, value in medians.items():
                    base = medians["REST binary" if name.startswith("REST") else "gRPC raw"]
                    print(f"  {name:20s} {value:9.2f}   x{value / base:.2f} of the same protocol in-request")
                results.append({"mib": array.nbytes / MIB, "instance_kind": args.instance_kind, **medians})
            http.close()
            grpc.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
