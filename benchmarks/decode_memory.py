"""What one maximum-size request costs the server: peak RSS per body byte, RSS afterwards, health latency.

    .venv/bin/python -m benchmarks.decode_memory [--limit-mib 64] [--out decode_memory.json]

Starts the real server over a temporary repository (an FP32 identity model that batches, ``fp32``, and one
that does not, ``fp32_whole``) with ``--http-max-body-bytes`` and ``--grpc-max-message-bytes`` both at
``--limit-mib``, then sends one request of (almost) that size per case, one case at a time:

- BYTES, 2-byte elements (the issue's case: 6 wire bytes and one Python object each) as REST binary,
  REST JSON and gRPC ``raw_input_contents``, sent to ``fp32`` (decoded in full, then refused: FP32 is
  expected), so the figure is the decoder's alone;
- BYTES of empty elements (the most elements a body can hold) as REST binary;
- FP32 as REST binary, REST JSON and gRPC raw, sent to ``fp32_whole`` and served (decode, batcher, worker
  and the answer).

While each request is in flight it samples the server's RSS every 2 ms and probes ``/v2/health/ready``
every 10 ms. It reports, per case: the peak RSS growth over the level before, divided by the body size
(the "constant" of decoding), the RSS one second after the answer relative to before (must be within 10 %),
and the worst and median health-probe latency. Not part of the test suite: machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import psutil
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc

from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

MIB = 2**20


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    body_bytes: int
    peak_growth_mib: float
    peak_per_body_byte: float
    rss_before_mib: float
    rss_after_mib: float
    after_vs_before: float  # rss_after / rss_before
    seconds: float
    health_max_ms: float
    health_median_ms: float
    status: str


def _rest_binary(datatype: str, shape: list[int], blob: bytes) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT0",
                    "datatype": datatype,
                    "shape": shape,
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


def _rest_json(datatype: str, shape: list[int], data: list[object]) -> bytes:
    return orjson.dumps({"inputs": [{"name": "INPUT0", "datatype": datatype, "shape": shape, "data": data}]})


def _measure(server: ServerProcess, name: str, size: int, send: Callable[[], str]) -> Case:
    process = psutil.Process(server.process.pid)
    time.sleep(0.5)
    before = process.memory_info().rss
    peak = before
    latencies: list[float] = []
    done = threading.Event()
    status: list[str] = []

    def run() -> None:
        try:
            status.append(send())
        finally:
            done.set()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.002)

    with httpx.Client(base_url=f"http://{server.http_url}", timeout=30.0) as probe:
        probe.get("/v2/health/ready")
        sampler = threading.Thread(target=sample)
        sender = threading.Thread(target=run)
        started = time.perf_counter()
        sampler.start()
        sender.start()
        while not done.is_set():
            probe_start = time.perf_counter()
            probe.get("/v2/health/ready")
            latencies.append(time.perf_counter() - probe_start)
            time.sleep(0.01)
        sender.join()
        sampler.join()
        seconds = time.perf_counter() - started
    time.sleep(1.0)  # the answer is out; the server trims its heap in the background
    after = process.memory_info().rss
    latencies.sort()
    return Case(
        name=name,
        body_bytes=size,
        peak_growth_mib=(peak - before) / MIB,
        peak_per_body_byte=(peak - before) / size,
        rss_before_mib=before / MIB,
        rss_after_mib=after / MIB,
        after_vs_before=after / before,
        seconds=seconds,
        health_max_ms=1000 * latencies[-1] if latencies else 0.0,
        health_median_ms=1000 * latencies[len(latencies) // 2] if latencies else 0.0,
        status=status[0] if status else "no answer",
    )


def run_cases(server: ServerProcess, limit: int) -> list[Case]:
    http = httpx.Client(base_url=f"http://{server.http_url}", timeout=600.0)
    options = [("grpc.max_send_message_length", 2 * limit), ("grpc.max_receive_message_length", 2 * limit)]
    channel = grpc.insecure_channel(server.grpc_url, options=options)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # protoc's stubs are untyped
    room = limit - 64 * 1024  # the JSON header and the protobuf framing fit in the rest

    def post(body: bytes, headers: dict[str, str], model: str) -> Callable[[], str]:
        def send() -> str:
            response = http.post(f"/v2/models/{model}/infer", content=body, headers=headers)
            return f"{response.status_code} {response.text[:80]}"

        return send

    def infer(message: pb.ModelInferRequest) -> Callable[[], str]:
        def send() -> str:
            try:
                stub.ModelInfer(message, timeout=600)
            except grpc.RpcError as error:
                return f"{error.code().name} {error.details()[:80]}"
            return "OK"

        return send

    def idle() -> str:
        time.sleep(3.0)
        return "idle"

    # The noise floor: probe latencies with no large request in flight (a shared machine's scheduling).
    cases: list[Case] = [_measure(server, "idle (no request)", 1, idle)]
    two = struct.pack("<I", 2) + b"ab"
    count = room // len(two)
    body, headers = _rest_binary("BYTES", [count], two * count)
    cases.append(_measure(server, "BYTES 2-byte, REST binary", len(body), post(body, headers, "fp32")))
    del body
    empty = room // 4
    body, headers = _rest_binary("BYTES", [empty], b"\x00\x00\x00\x00" * empty)
    cases.append(_measure(server, "BYTES empty, REST binary", len(body), post(body, headers, "fp32")))
    del body
    json_count = room // 5  # "ab",
    body = _rest_json("BYTES", [json_count], ["ab"] * json_count)
    cases.append(_measure(server, "BYTES 2-byte, REST JSON", len(body), post(body, {}, "fp32")))
    del body
    message = pb.ModelInferRequest(model_name="fp32")
    message.inputs.add(name="INPUT0", datatype="BYTES", shape=[count])
    message.raw_input_contents.append(two * count)
    cases.append(_measure(server, "BYTES 2-byte, gRPC raw", message.ByteSize(), infer(message)))
    del message
    rows = room // 16
    floats = np.ones((rows, 4), np.float32)
    body, headers = _rest_binary("FP32", [rows, 4], floats.tobytes())
    cases.append(_measure(server, "FP32, REST binary (served)", len(body), post(body, headers, "fp32_whole")))
    del body
    json_rows = room // 16  # "0.5," is 4 bytes per value
    body = _rest_json("FP32", [json_rows, 4], [0.5] * (4 * json_rows))
    cases.append(_measure(server, "FP32, REST JSON (served)", len(body), post(body, {}, "fp32_whole")))
    del body
    message = pb.ModelInferRequest(model_name="fp32_whole")
    message.inputs.add(name="INPUT0", datatype="FP32", shape=[rows, 4])
    message.raw_input_contents.append(floats.tobytes())
    cases.append(_measure(server, "FP32, gRPC raw (served)", message.ByteSize(), infer(message)))
    channel.close()
    http.close()
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit-mib", type=int, default=64, help="body and message limit (default 64)")
    parser.add_argument("--out", type=Path, default=Path("decode_memory.json"))
    args = parser.parse_args()
    limit = args.limit_mib * MIB
    with tempfile.TemporaryDirectory(prefix="decode-memory-") as scratch:
        repository = Path(scratch)
        write_model(repository, "fp32", identity_model("FP32", (-1, 4)), config={"max_batch_size": 8})
        write_model(repository, "fp32_whole", identity_model("FP32", (-1, 4)), config={"max_batch_size": 0})
        limits = ("--http-max-body-bytes", str(limit), "--grpc-max-message-bytes", str(limit))
        with start_server(repository, *limits, "--log-level", "warning") as server:
            cases = run_cases(server, limit)
    heading = f"{'case':30} {'body MiB':>8} {'peak/body':>9} {'after/before':>12} {'s':>6}"
    print(f"{heading} {'health ms max/med':>18}")
    for case in cases:
        print(
            f"{case.name:30} {case.body_bytes / MIB:8.1f} {case.peak_per_body_byte:9.2f} "
            f"{case.after_vs_before:12.3f} {case.seconds:6.2f} "
            f"{case.health_max_ms:9.1f}/{case.health_median_ms:<8.1f}  {case.status[:40]}"
        )
    args.out.write_text(json.dumps([asdict(case) for case in cases], indent=2))


if __name__ == "__main__":
    main()
