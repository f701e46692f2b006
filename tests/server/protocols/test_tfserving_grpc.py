"""TF Serving's gRPC API on modelport's gRPC port, called with the tensorflow-serving-api package's own stubs
and tensors made by ``tf.make_tensor_proto`` (read back with ``tf.make_ndarray``), beside the Open Inference
Protocol on the same port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.grpc as grpcclient
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.helpers.onnx_models import half_plus_three_model, tag_signal_sensor_model, write_model
from tests.helpers.server_process import ServerProcess, start_server

HALF = "saved_model_half_plus_three"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    repository: Path = tmp_path_factory.mktemp("tfserving-grpc")
    write_model(repository, HALF, half_plus_three_model(), version=123)
    write_model(repository, "docs", tag_signal_sensor_model())
    with start_server(repository) as handle:
        yield handle


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_url) as opened:
        yield opened


@pytest.fixture
def prediction(channel: grpc.Channel) -> Any:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _predict(model: str, inputs: dict[str, Any], **spec: Any) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(
            value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        )
    return request


def test_predict_half_plus_three(prediction: Any) -> None:
    request = _predict(HALF, {"x": np.array([1.0, 2.0, 5.0], np.float32)}, signature_name="serving_default")
    response = prediction.Predict(request, timeout=30)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [3.5, 4.0, 5.5])
    assert (response.model_spec.name, response.model_spec.version.value) == (HALF, 123)


def test_typed_values_and_tensorflows_broadcast(prediction: Any) -> None:
    # tf.make_tensor_proto(1.0, shape=[3]) writes one float_val for three elements: TensorFlow repeats it.
    request = _predict(HALF, {"x": tf.make_tensor_proto(1.0, dtype=tf.float32, shape=[3])}, version=123)
    assert not request.inputs["x"].tensor_content
    response = prediction.Predict(request, timeout=30)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [3.5, 3.5, 3.5])


def test_named_inputs_strings_and_output_filter(prediction: Any) -> None:
    inputs = {
        "tag": np.array([b"foo", b"bar"], dtype=object),
        "signal": np.array([[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]], np.int32),
        "sensor": np.array([[[1, 2], [3, 4]], [[4, 5], [6, 8]]], np.float32),
    }
    response = prediction.Predict(_predict("docs", inputs), timeout=30)
    assert set(response.outputs) == {"tag_bytes", "signal_sum", "sensor_twice"}
    assert tf.make_ndarray(response.outputs["tag_bytes"]).tolist() == [b"foo", b"bar"]
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["signal_sum"]), [15, 15])
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["sensor_twice"]), 2 * inputs["sensor"])
    filtered = _predict("docs", inputs)
    filtered.output_filter.append("signal_sum")
    assert set(prediction.Predict(filtered, timeout=30).outputs) == {"signal_sum"}


def test_model_metadata_is_a_signature_def_map(prediction: Any) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = HALF
    request.metadata_field.append("signature_def")
    response = prediction.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 123
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert signature.inputs["x"].dtype == types_pb2.DT_FLOAT
    assert [d.size for d in signature.inputs["x"].tensor_shape.dim] == [-1]
    assert signature.outputs["y"].name == "y"


def test_model_status(channel: grpc.Channel) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = HALF
    response = stub.GetModelStatus(request, timeout=30)
    (status,) = response.model_version_status
    assert (status.version, status.state) == (123, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    assert status.status.error_code == 0  # OK
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetModelStatus(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_open_inference_protocol_serves_beside_it(server: ServerProcess, channel: grpc.Channel) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        assert client.is_model_ready(HALF)
    finally:
        client.close()
    services = set(ProtoReflectionDescriptorDatabase(channel).get_services())  # what grpcurl lists
    assert {"tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"} <= services


def _code(call: Any, request: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    return raised.value.code(), raised.value.details()


def test_bad_requests_get_tf_servings_codes(prediction: Any) -> None:
    x = np.array([1.0], np.float32)
    cases: list[tuple[Any, Any, grpc.StatusCode, str]] = [
        (prediction.Predict, _predict("half", {"x": x}), grpc.StatusCode.NOT_FOUND, "half"),
        (prediction.Predict, _predict(HALF, {"x": x}, version=9), grpc.StatusCode.NOT_FOUND, "9"),
        (
            prediction.Predict,
            _predict(HALF, {"x": x}, signature_name="classify"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "'classify' not found",
        ),
        (
            prediction.Predict,
            _predict(HALF, {"x": np.ones((2, 2), np.float32)}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "shape",
        ),
        (prediction.Predict, _predict(HALF, {"z": x}), grpc.StatusCode.INVALID_ARGUMENT, "x"),
        (
            prediction.Predict,
            _predict(HALF, {"x": x}, version_label="stable"),
            grpc.StatusCode.UNIMPLEMENTED,
            "labels",
        ),
        (prediction.Classify, classification_pb2.ClassificationRequest(), grpc.StatusCode.UNIMPLEMENTED, ""),
    ]
    truncated = _predict(HALF, {"x": np.array([1.0, 2.0], np.float32)})
    truncated.inputs["x"].tensor_content = truncated.inputs["x"].tensor_content[:5]
    cases.append(
        (prediction.Predict, truncated, grpc.StatusCode.INVALID_ARGUMENT, "tensor_content has 5 bytes")
    )
    metadata = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata.model_spec.name = HALF
    metadata.metadata_field.append("graph")
    cases.append((prediction.GetModelMetadata, metadata, grpc.StatusCode.INVALID_ARGUMENT, "signature_def"))
    for call, request, code, fragment in cases:
        got, details = _code(call, request)
        assert got == code, (request, details)
        assert fragment in details, details
    response = prediction.Predict(_predict(HALF, {"x": x}), timeout=30)  # still serving
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [3.5])
