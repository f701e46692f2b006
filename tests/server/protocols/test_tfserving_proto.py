"""Our TF Serving .proto files against the tensorflow-serving-api package's (and TensorFlow's) own
descriptors: every field we declare has their number, type, cardinality and oneof, every enum value their
number, and the services' methods their paths. The wire is these numbers, so this is what makes TF Serving's
clients and modelport understand each other."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FileDescriptor
from modelport.server.protocols.generated import tensorflow_error_codes_pb2 as ours_codes
from modelport.server.protocols.generated import tensorflow_tensor_pb2 as ours_tensor
from modelport.server.protocols.generated import tfserving_service_pb2 as ours_service
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2,
    predict_pb2,
    prediction_service_pb2,
)

OURS = [ours_tensor.DESCRIPTOR, ours_codes.DESCRIPTOR, ours_service.DESCRIPTOR]
# Where tensorflow-serving-api and TensorFlow register theirs.
THEIRS: Any = descriptor_pool.Default()  # type: ignore[no-untyped-call]  # untyped in types-protobuf


def _messages(file: FileDescriptor) -> Iterator[Descriptor]:
    def walk(message: Descriptor) -> Iterator[Descriptor]:
        if not message.GetOptions().map_entry:
            yield message
        for nested in message.nested_types:
            yield from walk(nested)

    for message in file.message_types_by_name.values():
        yield from walk(message)


@pytest.mark.parametrize("ours", OURS, ids=lambda file: file.name)
def test_every_field_matches_tf_serving(ours: FileDescriptor) -> None:
    checked = 0
    for message in _messages(ours):
        theirs: Descriptor = THEIRS.FindMessageTypeByName(message.full_name)
        for field in message.fields:
            other = theirs.fields_by_name.get(field.name)
            where = f"{message.full_name}.{field.name}"
            assert other is not None, f"{where} is not in TF Serving's message"
            assert (field.number, field.type, field.is_repeated) == (
                other.number,
                other.type,
                other.is_repeated,
            )
            assert (field.containing_oneof is None) == (other.containing_oneof is None), where
            for mine, their in ((field.message_type, other.message_type), (field.enum_type, other.enum_type)):
                assert (mine and mine.full_name) == (their and their.full_name), where
            checked += 1
    for enum in [*ours.enum_types_by_name.values(), *(e for m in _messages(ours) for e in m.enum_types)]:
        theirs_enum = THEIRS.FindEnumTypeByName(enum.full_name)
        for value in enum.values:
            assert theirs_enum.values_by_name[value.name].number == value.number, (
                f"{enum.full_name}.{value.name}"
            )
            checked += 1
    assert checked > 15


def test_services_have_tf_servings_paths() -> None:
    theirs = {
        "PredictionService": prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
        "ModelService": model_service_pb2.DESCRIPTOR.services_by_name["ModelService"],
    }
    for name, service in ours_service.DESCRIPTOR.services_by_name.items():
        other = theirs[name]
        assert service.full_name == other.full_name
        for method in service.methods:
            their_method = other.methods_by_name[method.name]
            assert method.input_type.full_name == their_method.input_type.full_name
            assert method.output_type.full_name == their_method.output_type.full_name


def test_a_request_encoded_by_their_classes_decodes_in_ours() -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.model_spec.version.value = 7
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].float_val.extend([1.0, 2.0])
    request.inputs["x"].tensor_shape.dim.add(size=2)
    request.output_filter.append("y")
    decoded = ours_service.PredictRequest.FromString(request.SerializeToString())
    assert (decoded.model_spec.name, decoded.model_spec.version.value) == ("m", 7)
    assert list(decoded.inputs["x"].float_val) == [1.0, 2.0]
    assert list(decoded.output_filter) == ["y"]
    status = get_model_status_pb2.GetModelStatusResponse.FromString(
        ours_service.GetModelStatusResponse(
            model_version_status=[ours_service.ModelVersionStatus(version=3, state="AVAILABLE")]
        ).SerializeToString()
    )
    assert status.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert get_model_metadata_pb2.SignatureDefMap.DESCRIPTOR.full_name == "tensorflow.serving.SignatureDefMap"
