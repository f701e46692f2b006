"""What one maximum-size request costs the server: peak RSS per body byte, RSS afterwards, health latency.

    .venv/bin/python -m benchmarks.decode_memory [--limit-mib 64] [--out decode_memory.json]

Starts the real server over a temporary repository (an FP32 identity model that batches, ``fp32``, and one
that does not, ``fp32_whole``) with ``--http-max-body-bytes`` and ``--grpc-max-message-bytes`` both at
``--limit-mib``, then sends one request of (almost) that size per case, one case at a time:

- BYTES, 2-byte elements (the issue's case: 6 wire bytes and one Python object each) as REST binary,
  REST JSON, gRPC ``raw_input_contents`` and gRPC typed ``bytes_contents`` (4 wire bytes each), sent to
  ``fp32`` (decoded in full, then refused: FP32 is expected), so the figure is the decoder's alone;
- BYTES of empty elements (the most elements a body can hold) as REST binary and gRPC raw;
- FP32 as REST binary, REST JSON, gRPC raw and gRPC typed ``fp32_contents``, sent to ``fp32_whole`` and
  served (decode, batcher, instance and the answer).

While each request is in flight it samples the server's RSS every 2 ms and probes REST
``/v2/health/ready`` and gRPC ``ServerReady`` every 10 ms. It reports, per case: the peak RSS growth over
the level before, divided by the body size (the "constant" of decoding), the RSS after the answer relative
to before (must be within 10 %: polled until it is, for at most 5 s, and how long that took), how long the
request took, and the worst and median
latency of each probe. A last row sends every case once more, back to back (a burst), and reports the RSS
after it relative to before. Not part of the test suite: machines are shared and noisy.
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
_SETTLE_S = 5.0


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    body_bytes: int
    peak_growth_mib: float
    peak_per_body_byte: float
    rss_before_mib: float
    rss_after_mib: float
    after_vs_before: float  # rss_after / rss_before
    settle_seconds: float  # from the answer to rss_after
    seconds: float
    health_max_ms: float
    health_median_ms: float
    grpc_ready_max_ms: float
    grpc_ready_median_ms: float
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


def _ms(latencies: list[float]) -> tuple[float, float]:
    """The worst and the median latency in ms (0 when none were measured)."""
    ordered = sorted(latencies)
    return (1000 * ordered[-1], 1000 * ordered[len(ordered) // 2]) if ordered else (0.0, 0.0)


def _measure(server: ServerProcess, name: str, size: int, send: Callable[[], str]) -> Case:
    process = psutil.Process(server.process.pid)
    time.sleep(0.5)
    before = process.memory_info().rss
    peak = before
    latencies: list[float] = []
    ready_latencies: list[float] = []
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

    with (
        httpx.Client(base_url=f"http://{server.http_url}", timeout=30.0) as probe,
        grpc.insecure_channel(server.grpc_url) as ready_channel,
    ):
        ready = pb_grpc.GRPCInferenceServiceStub(ready_channel)  # type: ignore[no-untyped-call]  # protoc's stubs are untyped
        probe.get("/v2/health/ready")
        ready.ServerReady(pb.ServerReadyRequest(), timeout=30)
        sampler = threading.Thread(target=sample)
        sender = threading.Thread(target=run)
        started = time.perf_counter()
        sampler.start()
        sender.start()
        while not done.is_set():
            probe_start = time.perf_counter()
            probe.get("/v2/health/ready")
            latencies.append(time.perf_counter() - probe_start)
            probe_start = time.perf_counter()
            ready.ServerReady(pb.ServerReadyRequest(), timeout=30)
            ready_latencies.append(time.perf_counter() - probe_start)
            time.sleep(0.01)
        sender.join()
        sampler.join()
        seconds = time.perf_counter() - started
    # The answer is out; the server frees and trims in the background: RSS once within 10 % of before,
    # or after _SETTLE_S, whichever comes first.
    answered = time.perf_counter()
    while (after := process.memory_info().rss) > 1.1 * before and time.perf_counter() - answered < _SETTLE_S:
        time.sleep(0.05)
    settle = time.perf_counter() - answered
    health_max, health_median = _ms(latencies)
    ready_max, ready_median = _ms(ready_latencies)
    return Case(
        name=name,
        body_bytes=size,
        peak_growth_mib=(peak - before) / MIB,
        peak_per_body_byte=(peak - before) / size,
        rss_before_mib=before / MIB,
        rss_after_mib=after / MIB,
        after_vs_before=after / before,
        settle_seconds=settle,
        seconds=seconds,
        health_max_ms=health_max,
        health_median_ms=health_median,
        grpc_ready_max_ms=ready_max,
        grpc_ready_median_ms=ready_median,
        status=status[0] if status else "no answer",
    )


def _grpc_bytes(model: str, count: int, blob: bytes) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name=model)
    message.inputs.add(name="INPUT0", datatype="BYTES", shape=[count])
    message.raw_input_contents.append(blob)
    return message


def _builders(
    room: int,
) -> list[tuple[str, Callable[[], tuple[str, bytes | pb.ModelInferRequest, dict[str, str]]]]]:
    """Each case's name and a function that builds its request: (model, REST body or gRPC message,
    REST headers). Built when sent, so the client holds one request at a time."""
    two = struct.pack("<I", 2) + b"ab"
    count = room // len(two)
    empty = room // 4
    json_count = room // 5  # "ab",
    typed_count = room // 4  # tag, length, "ab"
    rows = room // 16

    def rest_bytes_2() -> tuple[str, bytes | pb.ModelInferRequest, dict[str, str]]:
        return ("fp32", *_rest_binary("BYTES", [count], two * count))

    def rest_bytes_empty() -> tuple[str, bytes | pb.ModelInferRequest, dict[str, str]]:
        return ("fp32", *_rest_binary("BYTES", [empty], b"\x00\x00\x00\x00" * empty))

    def rest_json_bytes() -> tuple[str, bytes | pb.ModelInferRequest, dict[str, str]]:
        return "fp32", _rest_json("BYTES", [json_count], ["ab"] * json_count), {}

    def grpc_raw_bytes_2() -> tuple[str, bytes | pb.ModelInferRequest, dict[str, str]]:
        return "fp32", _grpc_bytes("fp32", count, two * count), {}

    def grpc_raw_bytes_empty() -> tuple[str, bytes | pb.ModelInferRequest, dict[str, str]]:
        return "fp32", _grpc_bytes("fp32", empty, b"\x00\x00\x00\x00" * empty), {}

    def grpc_typed_bytes() -> tuple[str, bytes | pb.ModelInferRequest, dict[str, str]]:
        message = pb.ModelInferRequest(model_name="fp32")
        tensor = message.inputs.add(name="INPUT0", datatype="BYTES", shape=[typed_count])
        tensor.contents.bytes_contents.extend([b"ab"] * typed_count)
        return "fp32", message, {}

    def rest_fp32() -> tuple[str, bytes | pb.ModelInferRequest, dict[str, str]]:
        return ("fp32_whole", *_rest_binary("FP32", [rows, 4], np.ones((rows, 4), np.float32).tobytes()))

    def rest_json_fp32() -> tuple[str, bytes | pb.ModelInferRequest, dict[str, str]]:
        return "fp32_whole", _rest_json("FP32", [rows, 4], [0.5] * (4 * rows)), {}  # "0.5," 4 bytes

    def grpc_raw_fp32() -> tuple[str, bytes | pb.ModelInferRequest, dict[str, str]]:
        message = pb.ModelInferRequest(model_name="fp32_whole")
        message.inputs.add(name="INPUT0", datatype="FP32", shape=[rows, 4])
        message.raw_input_contents.append(np.ones((rows, 4), np.float32).tobytes())
        return "fp32_whole", message, {}

    def grpc_typed_fp32() -> tuple[str, bytes | pb.ModelInferRequest, dict[str, str]]:
        typed_rows = room // 16  # packed: 4 wire bytes a value, as raw
        message = pb.ModelInferRequest(model_name="fp32_whole")
        tensor = message.inputs.add(name="INPUT0", datatype="FP32", shape=[typed_rows, 4])
        tensor.contents.fp32_contents.extend([0.5] * (4 * typed_rows))
        return "fp32_whole", message, {}

    return [
        ("BYTES 2-byte, REST binary", rest_bytes_2),
        ("BYTES empty, REST binary", rest_bytes_empty),
        ("BYTES 2-byte, REST JSON", rest_json_bytes),
        ("BYTES 2-byte, gRPC raw", grpc_raw_bytes_2),
        ("BYTES empty, gRPC raw", grpc_raw_bytes_empty),
        ("BYTES 2-byte, gRPC typed", grpc_typed_bytes),
        ("FP32, REST binary (served)", rest_fp32),
        ("FP32, REST JSON (served)", rest_json_fp32),
        ("FP32, gRPC raw (served)", grpc_raw_fp32),
        ("FP32, gRPC typed (served)", grpc_typed_fp32),
    ]


def run_cases(server: ServerProcess, limit: int) -> list[Case]:
    http = httpx.Client(base_url=f"http://{server.http_url}", timeout=600.0)
    options = [("grpc.max_send_message_length", 2 * limit), ("grpc.max_receive_message_length", 2 * limit)]
    channel = grpc.insecure_channel(server.grpc_url, options=options)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # protoc's stubs are untyped
    room = limit - 64 * 1024  # the JSON header and the protobuf framing fit in the rest

    def sender(
        model: str, request: bytes | pb.ModelInferRequest, headers: dict[str, str]
    ) -> Callable[[], str]:
        def send() -> str:
            if isinstance(request, bytes):
                response = http.post(f"/v2/models/{model}/infer", content=request, headers=headers)
                return f"{response.status_code} {response.text[:80]}"
            try:
                stub.ModelInfer(request, timeout=600)
            except grpc.RpcError as error:
                return f"{error.code().name} {error.details()[:80]}"
            return "OK"

        return send

    def idle() -> str:
        time.sleep(3.0)
        return "idle"

    def size(request: bytes | pb.ModelInferRequest) -> int:
        return len(request) if isinstance(request, bytes) else request.ByteSize()

    # The noise floor: probe latencies with no large request in flight (a shared machine's scheduling).
    cases: list[Case] = [_measure(server, "idle (no request)", 1, idle)]
    builders = _builders(room)
    for name, build in builders:
        model, request, headers = build()
        cases.append(_measure(server, name, size(request), sender(model, request, headers)))
        del request

    def burst() -> str:
        statuses = set()
        for _, build in builders:
            statuses.add(sender(*build())()[:3])
        return "burst: " + ", ".join(sorted(statuses))

    cases.append(_measure(server, f"burst (all {len(builders)}, once)", limit, burst))
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
    heading = f"{'case':30} {'body MiB':>8} {'peak/body':>9} {'after/before':>12} {'settle s':>8} {'s':>6}"
    print(f"{heading} {'REST ready ms max/med':>21} {'gRPC ready ms max/med':>21}")
    for case in cases:
        print(
            f"{case.name:30} {case.body_bytes / MIB:8.1f} "
            f"{case.peak_per_body_byte if case.body_bytes > 1 else float('nan'):9.2f} "
            f"{case.after_vs_before:12.3f} {case.settle_seconds:8.2f} {case.seconds:6.2f} "
            f"{case.health_max_ms:12.1f}/{case.health_median_ms:<8.1f}"
            f"{case.grpc_ready_max_ms:12.1f}/{case.grpc_ready_median_ms:<8.1f}  {case.status[:40]}"
        )
    args.out.write_text(json.dumps([asdict(case) for case in cases], indent=2))


if __name__ == "__main__":
    main()
