"""TF Serving's REST predict and gRPC Predict fuzzed through the real server: bodies and TensorProtos made
by hypothesis (any JSON where tensors go, rows of any shape, strings where numbers go, unknown dtypes,
negative or huge shapes, tensor_content of the wrong size). A client's error is a 4xx / a client-error
code with TF Serving's error shape, never a 500 or INTERNAL, and the server keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelport.server.protocols.generated import tensorflow_tensor_pb2 as tf_pb
from modelport.server.protocols.generated import tfserving_service_pb2 as tfs
from modelport.server.protocols.generated import tfserving_service_pb2_grpc as tfs_grpc

from tests.helpers.onnx_models import half_plus_three_model, tag_signal_sensor_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

_SETTINGS = settings(
    max_examples=200, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
_REST_ALLOWED = {200, 400, 404, 413, 501, 503}
_GRPC_REFUSED = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
_MODELS = st.sampled_from(["half", "docs", "unknown"])
_NAMES = st.sampled_from(["x", "tag", "signal", "sensor", "nope"])
_SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
_VALUES = st.recursive(
    _SCALARS | st.fixed_dictionaries({"b64": st.text(max_size=12)}),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_NAMES, inner, max_size=3),
    max_leaves=24,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("tfserving-fuzz")
    write_model(root, "half", half_plus_three_model())
    write_model(root, "docs", tag_signal_sensor_model())
    with start_server(root) as handle:
        yield handle


@pytest.fixture(scope="module")
def rest(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{server.http_url}", timeout=30) as client:
        yield client


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    body: dict[str, Any] = {}
    for key in draw(st.sets(st.sampled_from(["instances", "inputs", "signature_name", "extra"]), max_size=3)):
        body[key] = draw(_VALUES)
    if draw(st.booleans()):
        body["instances"] = draw(st.lists(_VALUES, max_size=4))
    return json.dumps(body).encode() if draw(st.integers(0, 9)) else draw(st.binary(max_size=40))


def _assert_still_serving(server: ServerProcess, rest: httpx.Client) -> None:
    assert server.process.poll() is None, "the server died"
    assert rest.post("/v1/models/half:predict", json={"instances": [1.0]}).json() == {"predictions": [3.5]}


def test_rest_predict_fuzz(server: ServerProcess, rest: httpx.Client) -> None:
    @_SETTINGS
    @given(model=_MODELS, body=_bodies())
    def run(model: str, body: bytes) -> None:
        answer = rest.post(f"/v1/models/{model}:predict", content=body)
        assert answer.status_code in _REST_ALLOWED, f"{answer.status_code}: {answer.text[:300]}"
        if answer.status_code != 200:
            message = answer.json()["error"]
            assert "internal error" not in message, message

    run()
    _assert_still_serving(server, rest)


@st.composite
def _tensors(draw: st.DrawFn) -> tf_pb.TensorProto:
    tensor = tf_pb.TensorProto(dtype=draw(st.integers(0, 30)))  # type: ignore[arg-type]  # any enum number
    for size in draw(st.lists(st.integers(-2, 2**40) | st.integers(0, 5), max_size=4)):
        tensor.tensor_shape.dim.add(size=size)
    tensor.tensor_shape.unknown_rank = draw(st.integers(0, 9)) == 0
    field = draw(st.sampled_from(["float_val", "int_val", "int64_val", "string_val", "half_val", "content"]))
    if field == "content":
        tensor.tensor_content = draw(st.binary(max_size=64))
    elif field == "string_val":
        tensor.string_val.extend(draw(st.lists(st.binary(max_size=8), max_size=6)))
    elif field == "float_val":
        tensor.float_val.extend(draw(st.lists(st.floats(width=32), max_size=6)))
    elif field == "int64_val":
        tensor.int64_val.extend(draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6)))
    else:
        getattr(tensor, field).extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6)))
    return tensor


def test_grpc_predict_fuzz(server: ServerProcess, rest: httpx.Client) -> None:
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = tfs_grpc.PredictionServiceStub(channel)  # type: ignore[no-untyped-call]  # generated

        @_SETTINGS
        @given(model=_MODELS, inputs=st.dictionaries(_NAMES, _tensors(), max_size=3), signature=_NAMES)
        def run(model: str, inputs: dict[str, tf_pb.TensorProto], signature: str) -> None:
            request = tfs.PredictRequest(inputs=inputs)
            request.model_spec.name = model
            if signature != "nope":
                request.model_spec.signature_name = "serving_default" if signature == "x" else ""
            try:
                stub.Predict(request, timeout=30)
            except grpc.RpcError as error:
                assert error.code() not in _GRPC_REFUSED, f"{error.code()}: {error.details()}"

        run()
    _assert_still_serving(server, rest)
