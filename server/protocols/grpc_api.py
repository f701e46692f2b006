"""The gRPC listener: ``inference.GRPCInferenceService`` on ``grpc.aio``, with health checking and reflection.

:func:`build_grpc_server` is what the composition root calls. Besides the inference service
(:mod:`grpc_servicer`) the server answers ``grpc.health.v1.Health`` (SERVING once startup is done and while
the data plane is ready, NOT_SERVING while starting or draining) and server reflection (``v1`` and
``v1alpha``: :mod:`grpc_reflection`), so ``grpcurl`` needs no .proto files. Requests are parsed by
:func:`grpc_status.lenient_deserializer`, so a message whose bytes do not parse gets INVALID_ARGUMENT and the
server goes on serving.

Connection limits (the gRPC side of what ``http_limits`` does for HTTP), as grpc.aio channel options:

- ``grpc.max_allowed_incoming_connections``: the connection cap (``grpc_max_connections``, scaled to the
  open-file limit by ``app.py``); more are refused. gRPC has no "close the oldest idle" policy; idle
  connections go after ``grpc.max_connection_idle_ms`` (``grpc_idle_timeout``) instead.
- ``grpc.server_handshake_timeout_ms`` = ``header_timeout``: a connection that has not sent its HTTP/2
  preface and SETTINGS by then is closed (the slowloris of HTTP/2).
- ``grpc.max_metadata_size`` / ``grpc.absolute_max_metadata_size`` = ``max_header_bytes``: larger request
  metadata is refused (RESOURCE_EXHAUSTED) instead of buffered.
- ``grpc.max_concurrent_streams`` = 1024 per connection: bounds what one connection can hold open (what the
  streams buffer together is bounded by the connection's flow-control window). grpcio's client does not
  queue calls beyond the peer's limit while it opens them (they fail with REFUSED_STREAM), and load
  generators run hundreds of calls on one channel, so the cap sits well above that.
- ``grpc.keepalive_time_ms`` 60 s / ``grpc.keepalive_timeout_ms`` 20 s: a peer that vanished while an RPC
  was open is found and its connection closed within ~80 s; ``grpc.http2.max_pings_without_data`` 0 lets
  those pings go on while a stalled request sends nothing.

Draining (:meth:`GrpcServer.stop`) waits for the RPCs whose request has arrived (their handler runs), not
for calls whose request message is still on its way: those are cancelled as soon as the handled ones end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection_pb2

from .generated import POOL
from .generated import grpc_service_pb2 as pb
from .grpc_infer_message import lenient_infer_deserializer
from .grpc_reflection import enable_reflection
from .grpc_servicer import InferenceServicer
from .grpc_status import lenient_deserializer
from .tfserving_grpc import TFSERVING_SERVICES, tfserving_handlers

if TYPE_CHECKING:
    from ..dataplane import DataPlane
    from ..repository.explicit import ExplicitControl
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


class _InFlight:
    """How many RPC handlers run now (each had its whole request: a unary handler starts only then)."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.closing = False  # set by GrpcServer.stop: RPCs arriving now are refused with UNAVAILABLE

    def track(self, implementation: Callable[..., Any]) -> Callable[..., Any]:
        """``implementation`` (a coroutine or async-generator function), counted while it runs."""
        if inspect.isasyncgenfunction(implementation):

            @functools.wraps(implementation)
            async def streaming(*args: Any) -> AsyncIterator[Any]:
                await self._refuse_if_closing(args[-1])
                with self._running():
                    async for item in implementation(*args):
                        yield item

            return streaming

        @functools.wraps(implementation)
        async def unary(*args: Any) -> Any:
            await self._refuse_if_closing(args[-1])
            with self._running():
                return await implementation(*args)

        return unary

    async def _refuse_if_closing(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.closing:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down; retry elsewhere")

    @contextlib.contextmanager
    def _running(self) -> Any:
        self.count += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self.idle.set()


def _service_handler(servicer: InferenceServicer, in_flight: _InFlight) -> grpc.GenericRpcHandler:
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
            in_flight.track(implementations[method.name]),
            request_deserializer=(
                lenient_infer_deserializer
                if request_class is pb.ModelInferRequest
                else lenient_deserializer(request_class)
            ),
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


def _hosts(host: str) -> list[str]:
    """The addresses gRPC listens on for ``host``. grpc core binds any wildcard, 0.0.0.0 included, dual
    stack (IPv6 too); 0.0.0.0 asks for IPv4 only, so it becomes every IPv4 address of the host's interfaces
    (those present at start: an address added later is not served)."""
    if host != "0.0.0.0":
        return [host]
    import psutil

    found = {
        address.address
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family == socket.AF_INET
    }
    return sorted(found) or [host]


def _address(host: str, port: int) -> str:
    """grpc's address for ``host``: 0.0.0.0 binds IPv4 only; ``::`` / ``[::]`` IPv6, dual stack where the
    OS maps IPv4 into it."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


@dataclass(slots=True)
class GrpcServer:
    """A bound, not yet started gRPC server and the port it really got."""

    server: grpc.aio.Server
    port: int
    health: _ReadinessHealth
    in_flight: _InFlight = field(default_factory=_InFlight)

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
        """Refuse new RPCs, give the handled ones up to ``grace`` seconds, then cancel what is left (calls
        still receiving their request, health watches).

        grpc.aio's ``server.stop`` is called exactly once: a second call while the first is still shutting
        the server down crashed the process (SIGSEGV in grpc core) when this waited on both at once.
        """
        self.in_flight.closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.in_flight.idle.wait(), timeout=grace)
        await self.server.stop(0)  # no handler runs now (or grace is over): what remains is no inference


def build_grpc_server(
    dataplane: DataPlane,
    settings: ServerSettings,
    *,
    explicit: ExplicitControl | None = None,
    max_connections: int | None = None,
) -> GrpcServer:
    """Build and bind the gRPC server on ``settings.host:settings.grpc_port`` (0 = an ephemeral port);
    repository load and unload go to ``explicit`` (without it they are UNIMPLEMENTED).

    Call it inside the running event loop that will serve it. Message size limits in both directions are
    ``settings.grpc_max_message_bytes``; connections are limited as the module says (``max_connections``:
    the cap, default ``settings.grpc_max_connections``). Raises ``OSError`` naming the address if it cannot
    be bound (the CLI prints it).
    """
    limit = settings.grpc_max_message_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            # Without this a second server on the same port binds silently and steals half the traffic.
            ("grpc.so_reuseport", 0),
            ("grpc.max_allowed_incoming_connections", max_connections or settings.grpc_max_connections),
            ("grpc.server_handshake_timeout_ms", int(settings.header_timeout * 1000)),
            ("grpc.max_connection_idle_ms", int(settings.grpc_idle_timeout * 1000)),
            ("grpc.max_metadata_size", settings.max_header_bytes),
            ("grpc.absolute_max_metadata_size", settings.max_header_bytes),
            ("grpc.max_concurrent_streams", 1024),
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.http2.max_pings_without_data", 0),
        ]
    )
    in_flight = _InFlight()
    servicer = InferenceServicer(
        dataplane,
        max_tensor_bytes=limit,
        explicit=explicit,
        management_token=settings.management_token,
    )
    server.add_generic_rpc_handlers((_service_handler(servicer, in_flight),))
    server.add_generic_rpc_handlers(
        tfserving_handlers(dataplane, max_tensor_bytes=limit, track=in_flight.track)
    )
    health = _ReadinessHealth(dataplane)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    _register_for_reflection(health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR)
    enable_reflection(
        server,
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, *TFSERVING_SERVICES),
        POOL,
    )
    port = settings.grpc_port
    for host in _hosts(settings.host):
        address = _address(host, port)
        try:
            port = server.add_insecure_port(address)  # the port bound first is the port of the others
        except RuntimeError as error:  # grpcio's way of saying the bind failed: an OS error, as for REST
            raise OSError(f"cannot bind the gRPC listener to {address}: {error}") from None
        if port == 0:  # older grpcio reports a failed bind as port 0
            raise OSError(f"cannot bind the gRPC listener to {address} (address in use?)")
    return GrpcServer(server=server, port=port, health=health, in_flight=in_flight)
