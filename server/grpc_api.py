"""The gRPC adapter: ``inference.GRPCInferenceService`` on ``grpc.aio``, plus health checking and reflection.

Each RPC decodes its message, makes one data-plane call and encodes the answer; no logic lives here. Errors
map through one table (:data:`GRPC_STATUS`); an unexpected exception reaches the client as INTERNAL with a
request id, and its traceback goes to the log under that id. A request whose bytes are not a valid
protobuf message is answered INVALID_ARGUMENT (grpc's own deserializer would say UNKNOWN); the server goes
on serving.

Besides the inference service the server answers ``grpc.health.v1.Health`` (SERVING while the data plane is
ready, NOT_SERVING while starting or draining) and server reflection, so ``grpcurl`` needs no .proto files.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2

from .errors import ErrorCode, InvalidInput, ModelportError, Unsupported
from .generated import POOL, model_config_pb2
from .generated import grpc_service_pb2 as pb
from .grpc_codec import decode_infer_request, encode_infer_response

if TYPE_CHECKING:
    from .dataplane import DataPlane
    from .settings import ServerSettings

__all__ = ["GRPC_STATUS", "SERVICE_NAME", "GrpcServer", "InferenceServicer", "build_grpc_server"]

logger = logging.getLogger(__name__)

SERVICE_NAME = "inference.GRPCInferenceService"

# Triton's mapping (src/grpc/grpc_utils.cc), plus the two codes a serving queue needs.
GRPC_STATUS: Mapping[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARG: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.UNSUPPORTED: grpc.StatusCode.UNIMPLEMENTED,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
}

_FILE_PREFIX = "file:"

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """Stands in for a request message whose bytes did not parse; the RPC answers INVALID_ARGUMENT."""

    message_name: str
    reason: str

    def error(self) -> InvalidInput:
        return InvalidInput(
            f"the request is not a valid {self.message_name} protobuf message ({self.reason})"
        )


def _lenient_deserializer(message_class: type[Message]) -> Callable[[bytes], Message | _Undecodable]:
    name = message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Message | _Undecodable:
        try:
            return message_class.FromString(data)
        except DecodeError as error:
            return _Undecodable(name, str(error) or "cannot parse the bytes")

    return deserialize


def _internal_error(rpc: str) -> ModelportError:
    """Log the exception being handled under a fresh request id; return what the client is told."""
    request_id = uuid.uuid4().hex[:16]
    logger.exception("gRPC %s failed unexpectedly (request id %s)", rpc, request_id)
    return ModelportError(f"internal error (request id {request_id}); the server log has the details")


async def _abort(context: grpc.aio.ServicerContext, error: ModelportError) -> NoReturn:
    await context.abort(GRPC_STATUS[error.code], error.message)
    raise AssertionError("context.abort returned")  # it always raises


Unary = Callable[[Any, _Req, grpc.aio.ServicerContext], Awaitable[_Resp]]


def _unary(handler: Unary[_Req, _Resp]) -> Unary[_Req | _Undecodable, _Resp]:
    """Wrap a unary RPC: refuse undecodable requests, map errors through :data:`GRPC_STATUS`."""

    @functools.wraps(handler)
    async def rpc(self: Any, request: _Req | _Undecodable, context: grpc.aio.ServicerContext) -> _Resp:
        if isinstance(request, _Undecodable):
            await _abort(context, request.error())
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except ModelportError as error:
            await _abort(context, error)
        except Exception:
            await _abort(context, _internal_error(handler.__name__))

    return rpc


def _unsupported(feature: str) -> Unary[Message, Message]:
    async def rpc(self: Any, request: Message, context: grpc.aio.ServicerContext) -> Message:
        raise Unsupported(f"{feature} is not supported by modelport")

    return _unary(rpc)


class InferenceServicer:
    """``inference.GRPCInferenceService``: one method per RPC of ``proto/grpc_service.proto``."""

    def __init__(self, dataplane: DataPlane, *, max_tensor_bytes: int) -> None:
        self._dataplane = dataplane
        self._max_tensor_bytes = max_tensor_bytes

    @_unary
    async def server_live(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self._dataplane.live())

    @_unary
    async def server_ready(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._dataplane.ready())

    @_unary
    async def model_ready(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self._dataplane.model_ready(request.name, request.version))

    @_unary
    async def server_metadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        meta = self._dataplane.server_metadata()
        return pb.ServerMetadataResponse(name=meta.name, version=meta.version, extensions=meta.extensions)

    @_unary
    async def model_metadata(
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        meta = self._dataplane.model_metadata(request.name, request.version)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta.name,
            versions=meta.versions,
            platform=meta.platform,
            inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
            outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs],
        )

    @_unary
    async def model_infer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        return await self._infer(request)

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        try:
            decoded = decode_infer_request(request, max_bytes=self._max_tensor_bytes)
        except ModelportError as error:  # counted and access-logged like any failed request
            raise self._dataplane.reject(
                error,
                model_name=request.model_name,
                model_version=request.model_version,
                request_id=request.id,
                protocol="grpc",
            ) from None
        return encode_infer_response(await self._dataplane.infer(decoded))

    async def model_stream_infer(
        self, requests: AsyncIterator[pb.ModelInferRequest | _Undecodable], context: Any
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """One answer per request, in order; a failed request is reported in ``error_message``."""
        async for request in requests:
            if isinstance(request, _Undecodable):
                yield pb.ModelStreamInferResponse(error_message=request.error().message)
                continue
            try:
                answer = await self._infer(request)
            except ModelportError as error:
                yield pb.ModelStreamInferResponse(error_message=error.message)
            except Exception:
                yield pb.ModelStreamInferResponse(error_message=_internal_error("ModelStreamInfer").message)
            else:
                yield pb.ModelStreamInferResponse(infer_response=answer)

    @_unary
    async def model_config(self, request: pb.ModelConfigRequest, context: Any) -> pb.ModelConfigResponse:
        config = self._dataplane.model_config(request.name, request.version)
        message = json_format.ParseDict(config, model_config_pb2.ModelConfig(), ignore_unknown_fields=True)
        return pb.ModelConfigResponse(config=message)

    @_unary
    async def model_statistics(
        self, request: pb.ModelStatisticsRequest, context: Any
    ) -> pb.ModelStatisticsResponse:
        stats = self._dataplane.model_statistics(request.name, request.version)
        return json_format.ParseDict(
            {"model_stats": stats}, pb.ModelStatisticsResponse(), ignore_unknown_fields=True
        )

    @_unary
    async def repository_index(
        self, request: pb.RepositoryIndexRequest, context: Any
    ) -> pb.RepositoryIndexResponse:
        entry = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(
            models=[
                entry(name=e.name, version=e.version, state=e.state, reason=e.reason)
                for e in self._dataplane.repository_index(ready_only=request.ready)
            ]
        )

    @_unary
    async def repository_model_load(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        config_json, files = _load_parameters(request.parameters)
        await self._dataplane.load_model(request.model_name, config_json=config_json, files=files)
        return pb.RepositoryModelLoadResponse()

    @_unary
    async def repository_model_unload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        await self._dataplane.unload_model(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    system_shared_memory_status = _unsupported("system shared memory")
    system_shared_memory_register = _unsupported("system shared memory")
    system_shared_memory_unregister = _unsupported("system shared memory")
    cuda_shared_memory_status = _unsupported("CUDA shared memory")
    cuda_shared_memory_register = _unsupported("CUDA shared memory")
    cuda_shared_memory_unregister = _unsupported("CUDA shared memory")
    trace_setting = _unsupported("tracing")
    log_settings = _unsupported("changing log settings at run time")

    def rpcs(self) -> dict[str, Callable[..., Any]]:
        """The implementation of each RPC, by its name in ``proto/grpc_service.proto``."""
        return {
            "ServerLive": self.server_live,
            "ServerReady": self.server_ready,
            "ModelReady": self.model_ready,
            "ServerMetadata": self.server_metadata,
            "ModelMetadata": self.model_metadata,
            "ModelInfer": self.model_infer,
            "ModelStreamInfer": self.model_stream_infer,
            "ModelConfig": self.model_config,
            "ModelStatistics": self.model_statistics,
            "RepositoryIndex": self.repository_index,
            "RepositoryModelLoad": self.repository_model_load,
            "RepositoryModelUnload": self.repository_model_unload,
            "SystemSharedMemoryStatus": self.system_shared_memory_status,
            "SystemSharedMemoryRegister": self.system_shared_memory_register,
            "SystemSharedMemoryUnregister": self.system_shared_memory_unregister,
            "CudaSharedMemoryStatus": self.cuda_shared_memory_status,
            "CudaSharedMemoryRegister": self.cuda_shared_memory_register,
            "CudaSharedMemoryUnregister": self.cuda_shared_memory_unregister,
            "TraceSetting": self.trace_setting,
            "LogSettings": self.log_settings,
        }


def _load_parameters(
    parameters: Mapping[str, pb.ModelRepositoryParameter],
) -> tuple[str | None, dict[str, bytes] | None]:
    """``config`` (a ModelConfig as JSON, string_param) and ``file:<version>/<name>`` (bytes_param)."""
    config: str | None = None
    files: dict[str, bytes] = {}
    for key, value in parameters.items():
        kind = value.WhichOneof("parameter_choice")
        if key == "config":
            if kind != "string_param":
                raise InvalidInput(
                    "load parameter 'config' must be a string_param holding the config as JSON"
                )
            config = value.string_param
        elif key.startswith(_FILE_PREFIX):
            if kind != "bytes_param":
                raise InvalidInput(f"load parameter '{key}' must be a bytes_param holding the file's content")
            files[key] = value.bytes_param
        else:
            raise InvalidInput(
                f"unknown load parameter '{key}'; expected 'config' or '{_FILE_PREFIX}<version>/<file name>'"
            )
    return config, files or None


class _ReadinessHealth(HealthServicer):  # type: ignore[misc]  # grpc_health ships no type information
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
            request_deserializer=_lenient_deserializer(request_class),
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
    ``settings.grpc_max_message_bytes``. Raises ``RuntimeError`` naming the address if it cannot be bound.
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
    except RuntimeError as error:
        raise RuntimeError(f"cannot bind the gRPC listener to {address}: {error}") from error
    if port == 0:  # older grpcio reports a failed bind as port 0
        raise RuntimeError(f"cannot bind the gRPC listener to {address} (address in use?)")
    return GrpcServer(server=server, port=port, health=health)
