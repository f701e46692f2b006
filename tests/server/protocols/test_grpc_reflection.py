"""Server reflection answers under ``grpc.reflection.v1`` as well as ``v1alpha``, through grpcio's own
reflection client (``ProtoReflectionDescriptorDatabase``) pointed at each service name.

grpcurl and newer grpc tools ask ``v1`` first; grpcio-reflection serves only ``v1alpha``, whose messages
``v1`` shares field for field, so the client's messages are sent to the ``v1`` method unchanged.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

SERVICE = "inference.GRPCInferenceService"
REFLECTION = {
    "v1": "grpc.reflection.v1.ServerReflection",
    "v1alpha": "grpc.reflection.v1alpha.ServerReflection",
}


class _Stub:
    """A reflection stub calling ``service``'s ServerReflectionInfo."""

    def __init__(self, channel: grpc.Channel, service: str) -> None:
        self.ServerReflectionInfo = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )


def _database(channel: grpc.Channel, version: str) -> ProtoReflectionDescriptorDatabase:
    database = ProtoReflectionDescriptorDatabase(channel)
    database._stub = _Stub(channel, REFLECTION[version])  # the client hard-codes v1alpha
    return database


@pytest.mark.parametrize("version", sorted(REFLECTION))
def test_reflection_lists_and_describes_the_services(grpc_channel: grpc.Channel, version: str) -> None:
    database = _database(grpc_channel, version)
    services = set(database.get_services())
    assert {SERVICE, "grpc.health.v1.Health", *REFLECTION.values()} <= services
    pool: Any = descriptor_pool.DescriptorPool(database)
    infer = pool.FindServiceByName(SERVICE).methods_by_name["ModelInfer"]
    assert infer.output_type.fields_by_name["raw_output_contents"].number == 6
    # Each reflection service describes itself, v1 under its own package.
    described = pool.FindServiceByName(REFLECTION[version]).methods_by_name["ServerReflectionInfo"]
    assert described.input_type.full_name == f"grpc.reflection.{version}.ServerReflectionRequest"
