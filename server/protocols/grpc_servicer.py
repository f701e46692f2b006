"""``inference.GRPCInferenceService``: one method per RPC of ``proto/grpc_service.proto``.

Each RPC decodes its message, makes one data-plane call and encodes the answer; no logic lives here. Errors
are mapped by :mod:`grpc_status`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from ..errors import InvalidInput, ModelportError, Unsupported
from ..inference import InferRequest
from ..names import check_model_name, check_version
from ..observability.recording import client_request_id, internal_error
from ..shared_memory import CUDA_SHARED_MEMORY_REFUSAL
from .generated import grpc_service_pb2 as pb
from .generated import model_config_pb2
from .grpc_codec import decode_infer_request, encode_infer_response
from .grpc_infer_message import InferMessage
from .grpc_status import GRPC_STATUS, Undecodable, guarded, unary
from .large_requests import after_large_call, after_large_request, decode_off_loop
from .management_access import ManagementAccess, grpc_peer_host
from .settings_codec import (
    log_settings_message,
    log_update_from_grpc,
    trace_settings_message,
    trace_update_from_grpc,
)

if TYPE_CHECKING:
    from ..dataplane import DataPlane
    from ..repository.explicit import ExplicitControl

__all__ = ["STREAM_WINDOW", "InferenceServicer"]

logger = logging.getLogger(__name__)

# Requests of one ModelStreamInfer stream that may be in flight at once; beyond it the stream stops reading
# (HTTP/2 flow control holds the client back).
STREAM_WINDOW = 256
_FILE_PREFIX = "file:"
# The RPCs whose request names a model (besides the two infer RPCs, checked per message in _infer), and
# whether an empty name means "every model" there.
_NAMED_RPCS = {
    "ModelReady": False,
    "ModelMetadata": False,
    "ModelConfig": False,
    "ModelStatistics": True,
    "RepositoryModelLoad": False,
    "RepositoryModelUnload": False,
}


def check_request_names(request: Any, *, empty_means_all: bool = False) -> None:
    """The one place gRPC applies :mod:`names`: the model name (``name`` or ``model_name``) and version
    (``version`` or ``model_version``, empty for the latest) of a request message; :class:`InvalidInput`
    naming the field."""
    name_field, version_field = _name_fields(request.DESCRIPTOR)
    if name_field is not None:
        name = getattr(request, name_field)
        if name or not empty_means_all:
            check_model_name(name, field=name_field)
    if version_field is not None:
        check_version(getattr(request, version_field), field=version_field)


@functools.cache
def _name_fields(descriptor: Any) -> tuple[str | None, str | None]:
    """The model name field and the version field of a message type (looked up once per type)."""
    fields = descriptor.fields_by_name
    name = next((f for f in ("name", "model_name") if f in fields), None)
    version = next((f for f in ("version", "model_version") if f in fields), None)
    return name, version


def _names_checked(rpc: Callable[..., Any], *, empty_means_all: bool) -> Callable[..., Any]:
    """``rpc`` behind :func:`check_request_names` (an undecodable request is left to ``rpc`` to refuse)."""

    @functools.wraps(rpc)
    async def checked(request: Any, context: Any) -> Any:
        if not isinstance(request, Undecodable):
            try:
                check_request_names(request, empty_means_all=empty_means_all)
            except InvalidInput as refused:
                await context.abort(GRPC_STATUS[refused.code], refused.message)
        return await rpc(request, context)

    return checked


class InferenceServicer:
    """The service's RPCs over one :class:`DataPlane`; :meth:`rpcs` lists them by their proto names."""

    def __init__(
        self,
        dataplane: DataPlane,
        *,
        max_tensor_bytes: int,
        explicit: ExplicitControl | None = None,
        management_token: str | None = None,
    ) -> None:
        """Repository load and unload go to ``explicit`` (without it they are UNIMPLEMENTED), for clients
        that :class:`ManagementAccess` over ``management_token`` lets make them."""
        self._dataplane = dataplane
        self._max_tensor_bytes = max_tensor_bytes
        self._explicit = explicit
        self._access = ManagementAccess(management_token)

    @unary
    async def server_live(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self._dataplane.live())

    @unary
    async def server_ready(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._dataplane.ready())

    @unary
    async def model_ready(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self._dataplane.model_ready(request.name, request.version))

    @unary
    async def server_metadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        meta = self._dataplane.server_metadata()
        return pb.ServerMetadataResponse(name=meta.name, version=meta.version, extensions=meta.extensions)

    @unary
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

    @guarded
    async def model_infer(self, request: InferMessage | Undecodable, context: Any) -> pb.ModelInferResponse:
        if not isinstance(request, Undecodable):  # the message and the answer are freed when the call ends
            after_large_call(request.size, context.add_done_callback)
        return await self._infer(request, context)

    async def _infer(self, request: InferMessage | Undecodable, context: Any) -> pb.ModelInferResponse:
        # A request that cannot be decoded is counted and access-logged like any failed request.
        if isinstance(request, Undecodable):  # not even the model's name is known
            raise self._dataplane.reject(
                request.error(), model_name="", model_version="", request_id="", protocol="grpc"
            )
        model_name, model_version, request_id = "", "", ""
        decoded: InferRequest | None = None
        trace = None
        try:
            try:
                check_model_name(request.model_name, field="model_name")
                check_version(request.model_version, field="model_version")
                model_name, model_version = request.model_name, request.model_version
                if self._dataplane.tracing.on:  # the one check a request pays while tracing is off
                    trace = self._dataplane.tracing.begin(model_name, "grpc", *trace_context(context))
                request_id = client_request_id(request.id)
                # An unknown model or version is refused before its tensors are parsed or decoded.
                self._dataplane.check_servable(model_name, model_version)
                decode = functools.partial(decode_infer_request, request, max_bytes=self._max_tensor_bytes)
                decoded = await decode_off_loop(request.size, decode)
            except ModelportError as error:
                raise self._dataplane.reject(
                    error,
                    model_name=model_name,
                    model_version=model_version,
                    request_id=request_id,
                    protocol="grpc",
                ) from None
            response = await self._dataplane.infer(decoded, trace=trace)
            if trace is not None:
                trace.encoding()
            answer = encode_infer_response(response)
        except BaseException as error:
            if trace is not None:
                trace.end(error)
            raise
        else:
            if trace is not None:
                trace.end(None)
            return answer
        finally:
            if decoded is not None:  # its tensors go to be freed (off the loop when large)
                after_large_request(request.size, decoded.inputs)
                decoded.inputs = {}
            else:
                after_large_request(request.size)

    async def _stream_answer(
        self, request: InferMessage | Undecodable, context: Any
    ) -> pb.ModelStreamInferResponse:
        try:
            return pb.ModelStreamInferResponse(infer_response=await self._infer(request, context))
        except ModelportError as error:
            return pb.ModelStreamInferResponse(error_message=error.message)
        except Exception as error:
            failed = internal_error(logger, "gRPC ModelStreamInfer request", error)
            return pb.ModelStreamInferResponse(error_message=failed.message)

    async def model_stream_infer(
        self, requests: AsyncIterator[InferMessage | Undecodable], context: Any
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """One answer per request, in request order; a failed request is reported in ``error_message``.

        Requests of the stream run concurrently (up to :data:`STREAM_WINDOW`), so the batcher can group them;
        only the answers wait for their turn.
        """
        window = asyncio.Semaphore(STREAM_WINDOW)
        answers: asyncio.Queue[asyncio.Task[pb.ModelStreamInferResponse] | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for request in requests:
                    await window.acquire()
                    answers.put_nowait(asyncio.create_task(self._stream_answer(request, context)))
            finally:
                answers.put_nowait(None)

        reader = asyncio.create_task(read())
        running: list[asyncio.Task[Any]] = [reader]
        try:
            while (task := await answers.get()) is not None:
                running.append(task)
                answer = await task
                running.remove(task)
                window.release()
                yield answer
            await reader  # the client's half of the stream failed: fail the RPC
        finally:  # the client went away or the server stops: nothing of this stream may keep running
            while not answers.empty():
                if (left := answers.get_nowait()) is not None:
                    running.append(left)
            for pending in running:
                pending.cancel()

    @unary
    async def model_config(self, request: pb.ModelConfigRequest, context: Any) -> pb.ModelConfigResponse:
        config = self._dataplane.model_config(request.name, request.version)
        message = json_format.ParseDict(config, model_config_pb2.ModelConfig(), ignore_unknown_fields=True)
        return pb.ModelConfigResponse(config=message)

    @unary
    async def model_statistics(
        self, request: pb.ModelStatisticsRequest, context: Any
    ) -> pb.ModelStatisticsResponse:
        stats = self._dataplane.model_statistics(request.name, request.version)
        return json_format.ParseDict(
            {"model_stats": stats}, pb.ModelStatisticsResponse(), ignore_unknown_fields=True
        )

    @unary
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

    def _control(self, context: Any, action: str) -> ExplicitControl:
        """The explicit control, once this client may ``action`` a model (a management operation: see
        :mod:`management_access`; the token travels as ``authorization`` metadata)."""
        if self._explicit is None:
            raise Unsupported(f"repository {action} is not available on this server")
        self._explicit.require_enabled(action)
        self._check_access(context, f"repository {action}")
        return self._explicit

    def _check_access(self, context: Any, what: str) -> None:
        """Refuse a client that :class:`ManagementAccess` does not let make ``what``."""
        self._access.check(
            what,
            authorization=_authorization(context),
            client_host=grpc_peer_host(context.peer()),
        )

    @unary
    async def repository_model_load(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        control = self._control(context, "load")
        config_json, files = _load_parameters(request.parameters)
        await control.load(request.model_name, config_json=config_json, files=files)
        return pb.RepositoryModelLoadResponse()

    @unary
    async def repository_model_unload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        await self._control(context, "unload").unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    @unary
    async def system_shared_memory_status(
        self, request: pb.SystemSharedMemoryStatusRequest, context: Any
    ) -> pb.SystemSharedMemoryStatusResponse:
        region = pb.SystemSharedMemoryStatusResponse.RegionStatus
        return pb.SystemSharedMemoryStatusResponse(
            regions={
                r.name: region(name=r.name, key=r.key, offset=r.offset, byte_size=r.byte_size)
                for r in self._dataplane.system_shared_memory.status(request.name)
            }
        )

    @unary
    async def system_shared_memory_register(
        self, request: pb.SystemSharedMemoryRegisterRequest, context: Any
    ) -> pb.SystemSharedMemoryRegisterResponse:
        self._check_access(context, "system shared memory register")
        self._dataplane.system_shared_memory.register(
            request.name, key=request.key, offset=request.offset, byte_size=request.byte_size
        )
        return pb.SystemSharedMemoryRegisterResponse()

    @unary
    async def system_shared_memory_unregister(
        self, request: pb.SystemSharedMemoryUnregisterRequest, context: Any
    ) -> pb.SystemSharedMemoryUnregisterResponse:
        self._check_access(context, "system shared memory unregister")
        self._dataplane.system_shared_memory.unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()

    @unary
    async def cuda_shared_memory(self, request: Any, context: Any) -> Any:
        raise Unsupported(CUDA_SHARED_MEMORY_REFUSAL)

    @unary
    async def trace_setting(self, request: pb.TraceSettingRequest, context: Any) -> pb.TraceSettingResponse:
        """Triton's TraceSetting: no settings read them, settings change them (a management operation)."""
        if request.model_name:
            check_model_name(request.model_name, field="model_name")
        update = None
        if request.settings:
            self._may_change(context, "trace settings")
            update = trace_update_from_grpc(request)
        return trace_settings_message(self._dataplane.trace_settings(request.model_name, update))

    @unary
    async def log_settings(self, request: pb.LogSettingsRequest, context: Any) -> pb.LogSettingsResponse:
        update = None
        if request.settings:
            self._may_change(context, "log settings")
            update = log_update_from_grpc(request)
        return log_settings_message(self._dataplane.log_settings(update))

    def _may_change(self, context: Any, what: str) -> None:
        """Changing trace or log settings is a management operation, as on REST (rest_api._may_change)."""
        self._check_access(context, f"changing the {what}")

    def rpcs(self) -> dict[str, Callable[..., Any]]:
        """The implementation of each RPC, by its name in ``proto/grpc_service.proto``; those of
        :data:`_NAMED_RPCS` check the request's model name and version first."""
        implementations: dict[str, Callable[..., Any]] = {
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
            "CudaSharedMemoryStatus": self.cuda_shared_memory,
            "CudaSharedMemoryRegister": self.cuda_shared_memory,
            "CudaSharedMemoryUnregister": self.cuda_shared_memory,
            "TraceSetting": self.trace_setting,
            "LogSettings": self.log_settings,
        }
        for name, empty_means_all in _NAMED_RPCS.items():
            implementations[name] = _names_checked(implementations[name], empty_means_all=empty_means_all)
        return implementations


def _authorization(context: Any) -> str | None:
    """The ``authorization`` metadata of an RPC (the management token travels there), or None."""
    value = dict(context.invocation_metadata() or ()).get("authorization")
    return value if isinstance(value, str) else None


def trace_context(context: Any) -> tuple[str | None, str | None]:
    """The W3C ``traceparent`` and ``tracestate`` of an RPC's metadata (None where absent)."""
    parent = state = None
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent" and isinstance(value, str):
            parent = value
        elif key == "tracestate" and isinstance(value, str):
            state = value
    return parent, state


def _load_parameters(
    parameters: Mapping[str, pb.ModelRepositoryParameter],
) -> tuple[str | None, dict[str, bytes] | None]:
    """``config`` (the model's config as JSON, string_param) and ``file:<version>/<name>`` (bytes_param)."""
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
