"""The gRPC listener: ``inference.GRPCInferenceService`` on ``grpc.aio``, with health checking and reflection.

:func:`build_grpc_server` is what the composition root calls. Besides the inference service
(:mod:`grpc_servicer`) the server answers ``grpc.health.v1.Health`` (SERVING once startup is done and while
the data plane is ready, NOT_SERVING while starting or draining) and server reflection, so ``grpcurl`` needs
no .proto files. Requests are parsed by :func:`grpc_status.lenient_deserializer`, so a message whose bytes do
not parse gets INVALID_ARGUMENT and the server goes on serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2

from .generated import POOL
from .generated import grpc_service_pb2 as pb
from .grpc_servicer import InferenceServicer
from .grpc_status import lenient_deserializer

if TYPE_CHECKING:
    from ..dataplane import DataPlane
    from ..settings import ServerSettings

__all__ = ["SERVICE_NAME", "GrpcServer", "build_grpc_server"]

SERVICE_NAME = "inference.GRPCInferenceService"


class _ReadinessHealth(health_aio.HealthServicer):  # type: ignore[misc]  # grpc_health ships no types
    """grpc.health.v1: the library's servicer, with SERVING reported only while the data plane is ready."""

    def __init__(self, dataplane: DataPlane) -> None:
        super().__init__()
        self._dataplane = dataplane

    async def Check(  # noqa: N802  (the gRPC method's name)
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        response: health_pb2.HealthCheckResponse = await super().Check(request, context)
        if response.status == health_pb2.HealthCheckResponse.SERVING and not self._dataplane.ready():
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
        return response


def _service_handler(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    """Method handlers for every RPC of the service, with request parsing that cannot fail."""
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    implementations = servicer.rpcs()
    declared = {method.name for method in service.methods}
    if declared != implementations.keys():
        raise RuntimeError(
            f"RPCs without an implementation or declaration: {declared ^ implementations.keys()}"
        )
    handlers = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        make = (
            grpc.stream_stream_rpc_method_handler
            if method.client_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            implementations[method.name],
            request_deserializer=lenient_deserializer(request_class),
            response_serializer=response_class.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _register_for_reflection(*files: Any) -> None:
    """Make the health and reflection .proto files describable from our pool (grpcurl asks for them)."""
    for file in files:
        try:
            POOL.FindFileByName(file.name)  # type: ignore[no-untyped-call]  # untyped in types-protobuf
        except KeyError:
            POOL.AddSerializedFile(file.serialized_pb)  # type: ignore[no-untyped-call]  # same


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


@dataclass(slots=True)
class GrpcServer:
    """A bound, not yet started gRPC server and the port it really got."""

    server: grpc.aio.Server
    port: int
    health: _ReadinessHealth

    async def start(self) -> int:
        """Start answering RPCs (health: NOT_SERVING until :meth:`serving`); returns the bound port."""
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        return self.port

    async def serving(self) -> None:
        """Startup is done: health reports SERVING (Check also requires the data plane to be ready)."""
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def drain(self) -> None:
        """Report NOT_SERVING from now on, to Check and Watch alike; RPCs are still answered."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """Refuse new RPCs, give in-flight ones up to ``grace`` seconds, then cancel them."""
        await self.server.stop(grace)


def build_grpc_server(dataplane: DataPlane, settings: ServerSettings) -> GrpcServer:
    """Build and bind the gRPC server on ``settings.host:settings.grpc_port`` (0 = an ephemeral port).

    Call it inside the running event loop that will serve it. Message size limits in both directions are
    ``settings.grpc_max_message_bytes``. Raises ``OSError`` naming the address if it cannot be bound
    (the CLI prints it).
    """
    limit = settings.grpc_max_message_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            # Without this a second server on the same port binds silently and steals half the traffic.
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers((_service_handler(InferenceServicer(dataplane, max_tensor_bytes=limit)),))
    health = _ReadinessHealth(dataplane)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    _register_for_reflection(health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
        pool=POOL,
    )
    address = _address(settings.host, settings.grpc_port)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as error:  # grpcio's way of saying the bind failed: an OS error, as for the REST port
        raise OSError(f"cannot bind the gRPC listener to {address}: {error}") from None
    if port == 0:  # older grpcio reports a failed bind as port 0
        raise OSError(f"cannot bind the gRPC listener to {address} (address in use?)")
    return GrpcServer(server=server, port=port, health=health)
