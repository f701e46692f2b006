"""gRPC requests of the maximum message size cost bounded time and memory (issue 12, item 3).

One server of its own with ``--grpc-max-message-bytes`` at 16 MiB (a maximum-size request stays cheap on a
shared 2-core machine): a request for an unknown model or version is refused before its tensors are parsed
or decoded, in ``raw_input_contents`` and in typed ``contents`` alike; while a maximum-size BYTES or FP32
request is decoded, REST ``/v2/health/ready`` and gRPC ``ServerReady`` keep answering within 100 ms; after
a burst of maximum-size requests the server's RSS is back within 10 % of its level before.
Hand-built ``ModelInferRequest`` messages through grpcio (tritonclient cannot send typed contents).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import psutil
import pytest
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc

from tests.helpers.health_probes import assert_answered_quickly, probe_while
from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import ServerProcess, start_server
from tests.helpers.tensors import empty_elements, mixed_elements

LIMIT = 16 * 2**20
ROOM = LIMIT - 4096  # the message's framing and names fit in the rest
_OPTIONS = [("grpc.max_send_message_length", 2 * LIMIT), ("grpc.max_receive_message_length", 2 * LIMIT)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    repository = tmp_path_factory.mktemp("grpc-large")
    write_model(repository, "fp32", identity_model("FP32", (-1, 4)), config={"max_batch_size": 8})
    write_model(repository, "fp32_whole", identity_model("FP32", (-1, 4)), config={"max_batch_size": 0})
    with start_server(repository, "--grpc-max-message-bytes", str(LIMIT)) as process:
        yield process


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[Any]:
    with grpc.insecure_channel(server.grpc_url, options=_OPTIONS) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # protoc's stubs are untyped


def _raw_bytes(model: str, version: str = "") -> pb.ModelInferRequest:
    """The most BYTES elements a maximum-size message holds, as ``raw_input_contents``."""
    count, blob = empty_elements(ROOM)
    message = pb.ModelInferRequest(model_name=model, model_version=version)
    message.inputs.add(name="INPUT0", datatype="BYTES", shape=[count])
    message.raw_input_contents.append(blob)
    return message


def _typed_bytes(model: str, version: str = "") -> pb.ModelInferRequest:
    """Two-byte elements in ``contents.bytes_contents`` (4 bytes each on the wire: tag, length, data)."""
    count = ROOM // 4
    message = pb.ModelInferRequest(model_name=model, model_version=version)
    tensor = message.inputs.add(name="INPUT0", datatype="BYTES", shape=[count])
    tensor.contents.bytes_contents.extend([b"ab"] * count)
    return message


def _fp32(model: str, *, typed: bool) -> tuple[pb.ModelInferRequest, np.ndarray[Any, Any]]:
    rows = ROOM // 16
    values = np.random.default_rng(7).standard_normal((rows, 4)).astype(np.float32)
    message = pb.ModelInferRequest(model_name=model)
    tensor = message.inputs.add(name="INPUT0", datatype="FP32", shape=[rows, 4])
    if typed:
        tensor.contents.fp32_contents.extend(values.reshape(-1).tolist())
    else:
        message.raw_input_contents.append(values.tobytes())
    return message, values


def _refused(stub: Any, message: pb.ModelInferRequest) -> tuple[float, grpc.RpcError]:
    started = time.perf_counter()
    with pytest.raises(grpc.RpcError) as failure:
        stub.ModelInfer(message, timeout=120)
    return time.perf_counter() - started, failure.value


# ----- an unknown model or version is refused before decoding -------------------------------------------


@pytest.mark.parametrize("build", [_raw_bytes, _typed_bytes], ids=["raw", "typed"])
def test_an_unknown_model_or_version_is_refused_before_its_tensors_are_decoded(
    stub: Any, build: Callable[..., pb.ModelInferRequest]
) -> None:
    # Decoded in full, then refused by the data plane (FP32 is expected): what decoding costs.
    decoded, error = _refused(stub, build("fp32"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "datatype BYTES, expected FP32" in error.details()
    for model, version, expected in (
        ("nosuch", "", "unknown model: 'nosuch' is not found"),
        ("fp32", "9", "'fp32' version 9 is not found"),
    ):
        took, error = _refused(stub, build(model, version))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert expected in error.details()
        # Receiving the message is all it costs; decoding its elements costs several times more.
        where = f"{model}/{version or '-'}"
        assert took < decoded / 3, f"{where} refused in {took:.2f} s, decoding took {decoded:.2f} s"


# ----- the server keeps answering while a maximum-size request is decoded -------------------------------


def _refused_as_bytes(build: Callable[[str], pb.ModelInferRequest]) -> Callable[[Any], None]:
    def send(stub: Any) -> None:
        _, error = _refused(stub, build("fp32"))
        assert "expected FP32" in error.details(), error.details()

    return send


def _mixed_raw(model: str) -> pb.ModelInferRequest:
    count, blob = mixed_elements(ROOM)
    message = pb.ModelInferRequest(model_name=model)
    message.inputs.add(name="INPUT0", datatype="BYTES", shape=[count])
    message.raw_input_contents.append(blob)
    return message


def _served_fp32(*, typed: bool) -> Callable[[Any], None]:
    message, values = _fp32("fp32_whole", typed=typed)

    def send(stub: Any) -> None:
        answer = stub.ModelInfer(message, timeout=120)
        output = np.frombuffer(answer.raw_output_contents[0], np.float32).reshape(values.shape)
        assert np.array_equal(output, values)

    return send


@pytest.mark.parametrize(
    "make_send",
    [
        lambda: _refused_as_bytes(_raw_bytes),
        lambda: _refused_as_bytes(_mixed_raw),
        lambda: _served_fp32(typed=False),
        lambda: _served_fp32(typed=True),
    ],
    ids=["bytes-raw-empty", "bytes-raw-mixed", "fp32-raw", "fp32-typed"],
)
def test_health_answers_on_rest_and_grpc_while_a_max_size_request_is_decoded(
    server: ServerProcess, stub: Any, make_send: Callable[[], Callable[[Any], None]]
) -> None:
    send = make_send()  # the message is built before the probing starts
    probed = probe_while(lambda: send(stub), http_url=server.http_url, grpc_url=server.grpc_url)
    assert_answered_quickly(probed)


def test_the_server_still_serves(stub: Any) -> None:
    message = pb.ModelInferRequest(model_name="fp32")
    message.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    message.raw_input_contents.append(np.arange(4, dtype=np.float32).tobytes())
    answer = stub.ModelInfer(message, timeout=30)
    assert np.frombuffer(answer.raw_output_contents[0], np.float32).tolist() == [0.0, 1.0, 2.0, 3.0]


# ----- memory returns after large requests --------------------------------------------------------------


def _settled_rss(process: psutil.Process, *, at_most: int, timeout: float = 10.0) -> int:
    """The server's RSS once it is at most ``at_most`` bytes (the trims run in the background), or after
    ``timeout`` seconds, whichever is first."""
    deadline = time.monotonic() + timeout
    while (rss := process.memory_info().rss) > at_most and time.monotonic() < deadline:
        time.sleep(0.1)
    return rss


def _refused_unknown(stub: Any) -> None:
    _, error = _refused(stub, _raw_bytes("nosuch"))
    assert "unknown model" in error.details()


def test_rss_returns_after_a_burst_of_max_size_requests(server: ServerProcess, stub: Any) -> None:
    """Within 10 % of the level before, after 2 of each kind of maximum-size request (decoded and refused,
    served, refused before decoding). One served maximum-size FP32 request goes first: ONNX Runtime's arena
    keeps the buffers of the largest batch a session has run (+1x its size, reused by the next ones)."""
    process = psutil.Process(server.process.pid)
    served_raw, served_typed = _served_fp32(typed=False), _served_fp32(typed=True)
    served_raw(stub)
    burst: list[Callable[[Any], None]] = [
        _refused_as_bytes(_raw_bytes),
        _refused_as_bytes(_mixed_raw),
        _refused_as_bytes(_typed_bytes),
        served_raw,
        served_typed,
        _refused_unknown,
    ]
    time.sleep(1.0)  # the served request's trims have run
    before = process.memory_info().rss
    for send in burst * 2:
        send(stub)
    after = _settled_rss(process, at_most=int(before * 1.1))
    mib = f"{after / 2**20:.0f} MiB after the burst, {before / 2**20:.0f} MiB before"
    assert after <= before * 1.1, f"RSS {mib}"
