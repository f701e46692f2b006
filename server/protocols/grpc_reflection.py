"""gRPC server reflection under both of its names: ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``.

Clients ask for either (grpcurl and newer grpc tools try ``v1`` first; older ones know only ``v1alpha``), but
grpcio-reflection implements only ``v1alpha`` (1.81 to 1.85). ``v1``'s ``reflection.proto`` is
``v1alpha``'s with the package renamed: the same messages with the same field numbers, so the bytes on the
wire are the same and the ``v1alpha`` servicer answers ``v1`` calls unchanged. A ``v1`` copy of the file is
added to the pool so that ``v1`` itself can be described, and both services are listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

__all__ = ["V1_SERVICE_NAME", "enable_reflection"]

_V1ALPHA = "grpc.reflection.v1alpha"
_V1 = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{_V1}.ServerReflection"


def _v1_file() -> descriptor_pb2.FileDescriptorProto:
    """``grpc/reflection/v1/reflection.proto``: the ``v1alpha`` file with its package renamed."""
    proto = descriptor_pb2.FileDescriptorProto.FromString(reflection_pb2.DESCRIPTOR.serialized_pb)
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = _V1
    old, new = f".{_V1ALPHA}.", f".{_V1}."
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # assigning "" would mark a scalar field as typed
                field.type_name = field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    return proto


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str], pool: DescriptorPool) -> None:
    """Serve reflection of ``service_names`` (and of both reflection services) from ``pool`` on ``server``,
    under ``v1`` and ``v1alpha``. Call before the server starts; the pool must describe every name."""
    v1_file = _v1_file()
    try:
        pool.FindFileByName(v1_file.name)  # type: ignore[no-untyped-call]  # untyped in types-protobuf
    except KeyError:
        pool.Add(v1_file)  # type: ignore[no-untyped-call]  # same
    names = (*service_names, reflection.SERVICE_NAME, V1_SERVICE_NAME)
    servicer: Any = reflection.aio.ReflectionServicer(names, pool=pool)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {"ServerReflectionInfo": v1}),)
    )
