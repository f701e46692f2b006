"""The decoders' fuzz cases through the real server: no 5xx / INTERNAL for a client's error, and it stays up.

A few hundred cases per protocol (the in-process fuzz of ``test_decoder_fuzz.py`` does the volume): REST JSON,
REST binary extension, gRPC; each sent to a served model (so some decode and run) and the data plane's
checks, the batcher and the worker see them too. After each protocol, readiness is still true and a valid
request is still answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelport.server.protocols.generated import grpc_service_pb2 as pb
from modelport.server.protocols.generated import grpc_service_pb2_grpc as pb_grpc

from tests.helpers.onnx_models import add_sub_model, identity_model, write_model
from tests.helpers.server_process import ServerProcess, start_server
from tests.reliability.wire_fuzz import binary_requests, grpc_requests, json_bodies

CASES = 300
_SETTINGS = settings(
    max_examples=CASES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
# What a client's request may be answered with: success, its own error, the body limit, or "not now" (a
# queue at its bound). Never 500.
_REST_ALLOWED = {200, 400, 404, 413, 501, 503}
_GRPC_REFUSED = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
_MODELS = st.sampled_from(["identity", "identity", "simple", "unknown"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("fuzz-repo")
    write_model(root, "identity", identity_model("FP32", (-1, 4)), config={"max_batch_size": 8})
    write_model(root, "simple", add_sub_model("INT32", (-1, 16)), config={"max_batch_size": 8})
    with start_server(root) as handle:
        yield handle


@pytest.fixture(scope="module")
def rest(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{server.http_url}", timeout=30) as client:
        yield client


@st.composite
def _aimed(draw: st.DrawFn) -> bytes:
    """A JSON body aimed at the identity model: right name, FP32, [rows, 4], sometimes a field off."""
    rows = draw(st.integers(0, 9))
    data: Any = draw(st.lists(st.floats(width=32), min_size=rows * 4, max_size=rows * 4))
    tensor = {"name": "INPUT0", "datatype": "FP32", "shape": [rows, 4], "data": data}
    if draw(st.booleans()):
        wrong = [("name", "INPUT1"), ("datatype", "FP64"), ("shape", [rows, 5]), ("data", [1, 2, 3])]
        key, value = draw(st.sampled_from(wrong))
        tensor[key] = value
    outputs = draw(st.sampled_from([None, [], [{"name": "OUTPUT0"}], [{"name": "nope"}]]))
    body: dict[str, Any] = {"inputs": [tensor]}
    if outputs is not None:
        body["outputs"] = outputs
    return json.dumps(body).encode()


def _assert_still_serving(server: ServerProcess, rest: httpx.Client) -> None:
    assert server.process.poll() is None, "the server died"
    assert rest.get("/v2/health/ready").status_code == 200
    valid = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    answer = rest.post("/v2/models/identity/infer", json=valid)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [1, 2, 3, 4]


def _check_rest(response: httpx.Response) -> None:
    assert response.status_code in _REST_ALLOWED, f"{response.status_code}: {response.text[:300]}"
    if response.status_code != 200:
        message = response.json()["error"]
        assert "Traceback" not in message and "internal error" not in message, message


def test_rest_json_fuzz_through_the_server(server: ServerProcess, rest: httpx.Client) -> None:
    @_SETTINGS
    @given(model=_MODELS, body=json_bodies() | _aimed())
    def run(model: str, body: bytes) -> None:
        _check_rest(rest.post(f"/v2/models/{model}/infer", content=body))

    run()
    _assert_still_serving(server, rest)


def test_rest_binary_fuzz_through_the_server(server: ServerProcess, rest: httpx.Client) -> None:
    @_SETTINGS
    @given(model=_MODELS, case=binary_requests())
    def run(model: str, case: tuple[bytes, int | None]) -> None:
        body, length = case
        headers = {"Content-Type": "application/octet-stream"}
        if length is not None:
            headers["Inference-Header-Content-Length"] = str(length)
        _check_rest(rest.post(f"/v2/models/{model}/infer", content=body, headers=headers))

    run()
    _assert_still_serving(server, rest)


def test_grpc_fuzz_through_the_server(server: ServerProcess, rest: httpx.Client) -> None:
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # generated

        @_SETTINGS
        @given(model=_MODELS, message=grpc_requests())
        def run(model: str, message: pb.ModelInferRequest) -> None:
            message.model_name = model
            try:
                stub.ModelInfer(message, timeout=30)
            except grpc.RpcError as error:
                code = error.code()
                assert code not in _GRPC_REFUSED, f"{code}: {error.details()}"

        run()
        tensor = pb.ModelInferRequest.InferInputTensor(name="INPUT0", datatype="FP32", shape=[1, 4])
        tensor.contents.fp32_contents.extend([1, 2, 3, 4])
        answer = stub.ModelInfer(pb.ModelInferRequest(model_name="identity", inputs=[tensor]), timeout=30)
        np.testing.assert_array_equal(np.frombuffer(answer.raw_output_contents[0], "<f4"), [1, 2, 3, 4])
    _assert_still_serving(server, rest)
