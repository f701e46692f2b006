"""Size limits as each listener answers them: REST bodies (declared, chunked, compressed) get 413, gRPC
messages and metadata over their limits RESOURCE_EXHAUSTED, and the server keeps serving.

Header and URL limits of the HTTP listeners (431/414) are in ``test_slowloris.py``; here the server runs with
small limits (64 KiB bodies, 4 MiB gRPC messages) so each refusal costs the test little.
"""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc

from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

BODY_LIMIT = 64 * 1024
MESSAGE_LIMIT = 4 * 2**20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("limits-repo")
    write_model(root, "identity", identity_model("FP32", (-1, 4)), config={"max_batch_size": 8})
    limits = ("--http-max-body-bytes", str(BODY_LIMIT), "--grpc-max-message-bytes", str(MESSAGE_LIMIT))
    with start_server(root, "--model-control", "explicit", "--load-model", "*", *limits) as handle:
        yield handle


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(server.grpc_url) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # generated


def _chunks(total: int, size: int = 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b" " * size


def _assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert f"limit of {BODY_LIMIT} bytes" in response.json()["error"]


def _assert_serving(server: ServerProcess) -> None:
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    response = httpx.post(f"http://{server.http_url}/v2/models/identity/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "path", ["/v2/models/identity/infer", "/v2/repository/index", "/v2/repository/models/identity/load"]
)
def test_a_body_over_the_limit_gets_413_declared_or_chunked(server: ServerProcess, path: str) -> None:
    url = f"http://{server.http_url}{path}"
    started = time.monotonic()
    _assert_413(httpx.post(url, content=b" " * (BODY_LIMIT + 1), timeout=10))
    # Chunked: no Content-Length, so the server counts as it reads (Triton's CVE-2025-23310/23311 path).
    _assert_413(httpx.post(url, content=_chunks(4 * BODY_LIMIT), timeout=10))
    assert time.monotonic() - started < 5
    _assert_serving(server)


def test_a_body_at_the_limit_is_read(server: ServerProcess) -> None:
    body = b'{"inputs": []}'.ljust(BODY_LIMIT)
    response = httpx.post(f"http://{server.http_url}/v2/models/identity/infer", content=body, timeout=10)
    assert response.status_code == 400  # read whole, then refused for what it says, not for its size
    assert "limit" not in response.json()["error"]


def test_a_compressed_body_that_inflates_past_the_limit_gets_413(server: ServerProcess) -> None:
    bomb = gzip.compress(b"[" + b" " * (200 * BODY_LIMIT) + b"]")  # 13 MB of JSON in ~13 KB
    assert len(bomb) < BODY_LIMIT
    response = httpx.post(
        f"http://{server.http_url}/v2/models/identity/infer",
        content=bomb,
        headers={"Content-Encoding": "gzip"},
        timeout=10,
    )
    _assert_413(response)
    assert "decompressed" in response.json()["error"]
    _assert_serving(server)


def test_a_declared_length_over_the_limit_is_refused_before_the_body_arrives(server: ServerProcess) -> None:
    host, port = server.http_url.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            "POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {2**40}\r\n\r\n"
        )
        sock.sendall(head.encode())  # and no body: the answer must not wait for it
        assert sock.recv(64).startswith(b"HTTP/1.1 413 ")


def test_a_grpc_message_over_the_limit_is_resource_exhausted(
    server: ServerProcess, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    request = pb.ModelInferRequest(model_name="identity", raw_input_contents=[b"\0" * (MESSAGE_LIMIT + 1)])
    request.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=30)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
    _assert_grpc_serving(stub)


def test_grpc_metadata_over_the_header_limit_is_resource_exhausted(
    stub: pb_grpc.GRPCInferenceServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ServerLive(pb.ServerLiveRequest(), metadata=[("x-big", "a" * 40 * 1024)], timeout=10)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
    _assert_grpc_serving(stub)


def _assert_grpc_serving(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    tensor = pb.ModelInferRequest.InferInputTensor(name="INPUT0", datatype="FP32", shape=[1, 4])
    tensor.contents.fp32_contents.extend([1, 2, 3, 4])
    answer = stub.ModelInfer(pb.ModelInferRequest(model_name="identity", inputs=[tensor]), timeout=30)
    np.testing.assert_array_equal(np.frombuffer(answer.raw_output_contents[0], "<f4"), [1, 2, 3, 4])
