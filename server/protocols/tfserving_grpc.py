"""TF Serving's gRPC API on the gRPC port, beside ``inference.GRPCInferenceService``, over the one data
plane: ``tensorflow.serving.PredictionService/Predict`` and ``GetModelMetadata``, and
``ModelService/GetModelStatus`` (proto/tfserving_service.proto). Classify, Regress, MultiInference and
HandleReloadConfigRequest are not declared, so gRPC answers them UNIMPLEMENTED.

Errors: :data:`~.grpc_status.GRPC_STATUS` (TF Serving's codes are gRPC's canonical ones, as ours), except
that an unknown model or version is NOT_FOUND, as TF Serving answers it ("Servable not found"), where the
Open Inference Protocol answers INVALID_ARGUMENT as Triton does; a version label is UNIMPLEMENTED.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import json_format

from ..dataplane import DataPlane
from ..errors import InvalidInput, ModelNotFound, ModelportError, Unsupported
from ..inference import InferRequest
from ..names import check_model_name
from ..observability.recording import internal_error
from .generated import tfserving_service_pb2 as tfs
from .grpc_status import GRPC_STATUS, Undecodable, lenient_deserializer
from .tfserving_status import model_status
from .tfserving_tensor import decode_tensor, encode_tensor
from .tfserving_types import DEFAULT_SIGNATURE, check_signature, signature_def_map

__all__ = ["TFSERVING_SERVICES", "tfserving_handlers"]

logger = logging.getLogger(__name__)

# The services' full names (for reflection: grpcurl lists and describes them).
TFSERVING_SERVICES = tuple(service.full_name for service in tfs.DESCRIPTOR.services_by_name.values())

Track = Callable[[Callable[..., Any]], Callable[..., Any]]


def _status_code(error: ModelportError) -> grpc.StatusCode:
    return grpc.StatusCode.NOT_FOUND if isinstance(error, ModelNotFound) else GRPC_STATUS[error.code]


def _spec(spec: tfs.ModelSpec) -> tuple[str, str]:
    """The model name and version (``""``: the latest) a ModelSpec names."""
    check_model_name(spec.name, field="model_spec.name")
    choice = spec.WhichOneof("version_choice")
    if choice == "version_label":
        raise Unsupported(
            f"version labels are not supported by modelport (asked for '{spec.version_label[:64]}'): "
            "versions are numbers; set model_spec.version"
        )
    if choice == "version":
        if spec.version.value < 1:
            raise InvalidInput(f"model_spec.version {spec.version.value}: versions are numbers >= 1")
        return spec.name, str(spec.version.value)
    return spec.name, ""


class _TfServingServicer:
    def __init__(self, dataplane: DataPlane, *, max_tensor_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_tensor_bytes = max_tensor_bytes

    async def predict(self, request: tfs.PredictRequest, context: Any) -> tfs.PredictResponse:
        name, version = _spec(request.model_spec)
        try:
            check_signature(request.model_spec.signature_name, name)
            inputs = {
                key: decode_tensor(key, tensor, max_bytes=self.max_tensor_bytes)
                for key, tensor in request.inputs.items()
            }
        except ModelportError as error:
            raise self.dataplane.reject(
                error, model_name=name, model_version=version, request_id="", protocol="grpc"
            ) from None
        outputs = list(request.output_filter) or None
        infer = InferRequest(name, version, inputs, requested_outputs=outputs, protocol="grpc")
        answer = await self.dataplane.infer(infer)
        response = tfs.PredictResponse()
        response.model_spec.name = name
        response.model_spec.version.value = int(answer.model_version)
        response.model_spec.signature_name = DEFAULT_SIGNATURE
        for key, array in answer.outputs.items():
            response.outputs[key].CopyFrom(encode_tensor(array))
        return response

    async def get_model_metadata(
        self, request: tfs.GetModelMetadataRequest, context: Any
    ) -> tfs.GetModelMetadataResponse:
        name, version = _spec(request.model_spec)
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            raise InvalidInput(
                f"metadata_field {fields}: give exactly ['signature_def'], the one metadata TF Serving (and "
                "modelport) answers"
            )
        metadata = self.dataplane.model_metadata(name, version)
        response = tfs.GetModelMetadataResponse()
        response.model_spec.name = name
        response.model_spec.version.value = int(version or max(metadata.versions, key=int, default="0"))
        signatures = json_format.ParseDict(signature_def_map(metadata), tfs.SignatureDefMap())
        response.metadata["signature_def"].Pack(signatures)
        return response

    async def get_model_status(
        self, request: tfs.GetModelStatusRequest, context: Any
    ) -> tfs.GetModelStatusResponse:
        name, version = _spec(request.model_spec)
        response = tfs.GetModelStatusResponse()
        response.model_version_status.extend(
            tfs.ModelVersionStatus(
                version=status.version,
                state=status.state,
                status=tfs.StatusProto(error_code=status.error_code, error_message=status.error_message),
            )
            for status in model_status(self.dataplane, name, version)
        )
        return response


def _decoded(request: Any) -> Any:
    if isinstance(request, Undecodable):
        raise request.error()
    return request


def _rpc(handler: Callable[[Any, Any], Any]) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]:
    """``handler`` with this adapter's error mapping; an undecodable request is INVALID_ARGUMENT."""

    async def rpc(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await handler(_decoded(request), context)
        except grpc.aio.AbortError:
            raise
        except ModelportError as error:
            await context.abort(_status_code(error), error.message)
        except Exception as error:
            failure = internal_error(logger, f"gRPC {handler.__name__}", error)
            await context.abort(_status_code(failure), failure.message)

    return rpc


def tfserving_handlers(
    dataplane: DataPlane, *, max_tensor_bytes: int, track: Track
) -> tuple[grpc.GenericRpcHandler, ...]:
    """The handlers of PredictionService and ModelService; ``track`` wraps each (the server's count of
    running RPCs, which shutdown waits on)."""
    servicer = _TfServingServicer(dataplane, max_tensor_bytes=max_tensor_bytes)
    services: dict[str, dict[str, Callable[[Any, Any], Any]]] = {
        "PredictionService": {"Predict": servicer.predict, "GetModelMetadata": servicer.get_model_metadata},
        "ModelService": {"GetModelStatus": servicer.get_model_status},
    }
    handlers = []
    for service_name, methods in services.items():
        service = tfs.DESCRIPTOR.services_by_name[service_name]
        declared = {method.name for method in service.methods}
        if declared != methods.keys():
            raise RuntimeError(f"{service_name}: RPCs without an implementation: {declared ^ methods.keys()}")
        by_name = {}
        for method in service.methods:
            request_class = getattr(tfs, method.input_type.name)
            response_class = getattr(tfs, method.output_type.name)
            by_name[method.name] = grpc.unary_unary_rpc_method_handler(
                track(_rpc(methods[method.name])),
                request_deserializer=lenient_deserializer(request_class),
                response_serializer=response_class.SerializeToString,
            )
        handlers.append(grpc.method_handlers_generic_handler(service.full_name, by_name))
    return tuple(handlers)
