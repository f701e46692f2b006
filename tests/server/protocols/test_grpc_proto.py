"""Our .proto against the client's: every field we declare has Triton's number, type and cardinality.

The wire is field numbers and types, so this is what makes ``tritonclient.grpc`` and modelport understand
each other. tritonclient's generated modules are Triton's own definitions; ours live in a separate descriptor
pool, which is also checked here (both sets import into one process).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FileDescriptor
from modelport.server.protocols.generated import POOL
from modelport.server.protocols.generated import grpc_service_pb2 as ours_service
from modelport.server.protocols.generated import model_config_pb2 as ours_config
from tritonclient.grpc import model_config_pb2 as triton_config
from tritonclient.grpc import service_pb2 as triton_service

FILES = [
    (ours_service.DESCRIPTOR, triton_service.DESCRIPTOR),
    (ours_config.DESCRIPTOR, triton_config.DESCRIPTOR),
]


def _messages(file: FileDescriptor) -> Iterator[Descriptor]:
    def walk(message: Descriptor) -> Iterator[Descriptor]:
        yield message
        for nested in message.nested_types:
            yield from walk(nested)

    for message in file.message_types_by_name.values():
        yield from walk(message)


def _enums(file: FileDescriptor) -> Iterator[EnumDescriptor]:
    yield from file.enum_types_by_name.values()
    for message in _messages(file):
        yield from message.enum_types


def _find(pool: Any, full_name: str) -> Descriptor:
    """A message descriptor by name (DescriptorPool's lookups are untyped in types-protobuf)."""
    found: Descriptor = pool.FindMessageTypeByName(full_name)
    return found


def _theirs(full_name: str) -> Descriptor | None:
    for _, theirs in FILES:
        try:
            return _find(theirs.pool, full_name)
        except KeyError:
            continue
    return None


@pytest.mark.parametrize(("ours", "theirs"), FILES, ids=["grpc_service", "model_config"])
def test_every_field_matches_triton(ours: FileDescriptor, theirs: FileDescriptor) -> None:
    assert ours.package == theirs.package == "inference"
    checked = 0
    for message in _messages(ours):
        counterpart = _theirs(message.full_name)
        assert counterpart is not None, f"{message.full_name} is not a Triton message"
        for field in message.fields:
            other = counterpart.fields_by_name.get(field.name)
            assert other is not None, f"{message.full_name}.{field.name} is not in Triton's message"
            where = f"{message.full_name}.{field.name}"
            assert field.number == other.number, where
            assert field.type == other.type, where
            assert field.is_repeated == other.is_repeated, where
            assert (field.containing_oneof is None) == (other.containing_oneof is None), where
            if field.message_type is not None:
                assert field.message_type.full_name == other.message_type.full_name, where
            if field.enum_type is not None:
                assert field.enum_type.full_name == other.enum_type.full_name, where
            checked += 1
    assert checked > 50


def test_service_messages_are_complete() -> None:
    """The service file declares every message and field of Triton's (only model_config is a subset)."""
    for theirs in _messages(triton_service.DESCRIPTOR):
        ours = _find(POOL, theirs.full_name)
        assert set(ours.fields_by_name) == set(theirs.fields_by_name), theirs.full_name


def test_model_config_covers_what_clients_read() -> None:
    config = _find(POOL, "inference.ModelConfig")
    for name in [
        "name",
        "platform",
        "backend",
        "max_batch_size",
        "input",
        "output",
        "version_policy",
        "instance_group",
        "dynamic_batching",
        "sequence_batching",
        "optimization",
        "parameters",
        "default_model_filename",
        "model_transaction_policy",
        "response_cache",
    ]:
        assert name in config.fields_by_name, name
    model_input = _find(POOL, "inference.ModelInput")
    assert {"name", "data_type", "format", "dims", "is_shape_tensor", "optional"} <= set(
        model_input.fields_by_name
    )
    queue = _find(POOL, "inference.ModelQueuePolicy")
    assert set(queue.fields_by_name) == set(triton_config.ModelQueuePolicy.DESCRIPTOR.fields_by_name)


def test_enum_values_match_triton() -> None:
    for ours, theirs in FILES:
        for enum in _enums(ours):
            pool: Any = theirs.pool
            other: EnumDescriptor = pool.FindEnumTypeByName(enum.full_name)
            assert {v.name: v.number for v in enum.values} == {v.name: v.number for v in other.values}, (
                enum.full_name
            )


def test_service_has_every_triton_rpc_with_the_same_signature() -> None:
    ours = ours_service.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton_service.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == "inference.GRPCInferenceService"
    assert [m.name for m in ours.methods] == [m.name for m in theirs.methods]
    for method in theirs.methods:
        mine = ours.methods_by_name[method.name]
        assert mine.input_type.full_name == method.input_type.full_name
        assert mine.output_type.full_name == method.output_type.full_name
        assert (mine.client_streaming, mine.server_streaming) == (
            method.client_streaming,
            method.server_streaming,
        )


def test_a_request_encoded_by_tritonclient_decodes_in_ours() -> None:
    theirs = triton_service.ModelInferRequest(model_name="m", model_version="2", id="r1")
    tensor = theirs.inputs.add(name="INPUT0", datatype="INT32", shape=[2, 2])
    tensor.contents.int_contents.extend([1, -2, 3, -4])
    tensor.parameters["p"].int64_param = 7
    theirs.outputs.add(name="OUTPUT0").parameters["classification"].int64_param = 2
    theirs.raw_input_contents.append(b"\x00\x01")
    ours = ours_service.ModelInferRequest.FromString(theirs.SerializeToString())
    assert (ours.model_name, ours.model_version, ours.id) == ("m", "2", "r1")
    assert list(ours.inputs[0].contents.int_contents) == [1, -2, 3, -4]
    assert ours.inputs[0].parameters["p"].int64_param == 7
    assert ours.outputs[0].parameters["classification"].int64_param == 2
    assert list(ours.raw_input_contents) == [b"\x00\x01"]


def test_generated_code_lives_in_its_own_pool() -> None:
    assert ours_service.DESCRIPTOR.pool is POOL
    assert triton_service.DESCRIPTOR.pool is not POOL
