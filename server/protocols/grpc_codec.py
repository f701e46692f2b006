"""gRPC inference messages <-> the internal :class:`InferRequest` / :class:`InferResponse`.

Decoding accepts each input either as typed ``contents`` or as ``raw_input_contents`` (never both, one raw
entry per input in ``inputs`` order) and builds the arrays through :mod:`wire_tensors`, so every check (shape,
byte count, declared size before allocation) is the one the REST adapter applies. An input placed in shared
memory by its parameters has neither (the raw entries are those of the other inputs) and goes to the data
plane as :class:`SharedMemoryInput`. Encoding always answers with ``raw_output_contents``
(``tritonclient.grpc`` decodes only those), an empty entry for an output written into shared memory.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError

from ..datatypes import by_name, by_numpy
from ..errors import InvalidInput
from ..inference import InferRequest, InferResponse, Parameter, SharedMemoryInput, Tensors
from ..shared_memory import SHARED_MEMORY_PARAMETERS
from .generated import grpc_service_pb2 as pb
from .grpc_infer_message import InferMessage
from .wire_tensors import (
    MAX_TENSOR_NAME,
    check_shape,
    shared_memory_input,
    tensor_from_buffer,
    tensor_from_values,
    tensor_to_bytes,
)

__all__ = [
    "CONTENTS_FIELDS",
    "decode_infer_request",
    "decode_parameters",
    "encode_infer_response",
    "encode_parameters",
]

# The typed field of InferTensorContents that carries each datatype. FP16 has none: it travels raw only.
CONTENTS_FIELDS: Mapping[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

_INT64_MAX = 2**63 - 1


def decode_infer_request(message: pb.ModelInferRequest | InferMessage, *, max_bytes: int) -> InferRequest:
    """Build the internal request; :class:`InvalidInput` naming the tensor for anything malformed.

    ``message`` is a parsed message or one split by :func:`grpc_infer_message.split_infer_request` (parsed
    here: call this off the event loop for a large one). ``max_bytes`` bounds each tensor's declared size
    (checked before any allocation). The request id is taken as sent: check it with
    :func:`recording.client_request_id` first.
    """
    raw: Sequence[bytes | memoryview]
    if isinstance(message, InferMessage):
        received = message
        try:
            message = received.parse()
        except DecodeError as error:
            raise InvalidInput(
                f"the request is not a valid inference.ModelInferRequest protobuf message ({error})"
            ) from None
        raw, model_name, model_version, request_id = (
            received.raw,
            received.model_name,
            received.model_version,
            received.id,
        )
    else:
        raw, model_name, model_version, request_id = (
            message.raw_input_contents,
            message.model_name,
            message.model_version,
            message.id,
        )
    # As in Triton, raw_input_contents holds one entry per input that is not in shared memory, in order.
    in_message = sum(1 for tensor in message.inputs if not _in_shared_memory(tensor))
    if raw and len(raw) != in_message:
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} entries for {in_message} inputs not in shared memory; send "
            "exactly one entry per such input, in the order of 'inputs'"
        )
    inputs: Tensors = {}
    shared_inputs: dict[str, SharedMemoryInput] = {}
    for index, tensor in enumerate(message.inputs):
        if len(tensor.name) > MAX_TENSOR_NAME:
            raise InvalidInput(
                f"inputs[{index}]: a tensor name of {len(tensor.name)} characters; at most {MAX_TENSOR_NAME}"
            )
        if tensor.name in inputs or tensor.name in shared_inputs:
            raise InvalidInput(f"input '{tensor.name}' is given twice")
        shared = _shared_input(tensor)
        if shared is not None:
            shared_inputs[tensor.name] = shared
            continue
        inputs[tensor.name] = _decode_input(tensor, raw[len(inputs)] if raw else None, max_bytes)
    for index, output in enumerate(message.outputs):
        if len(output.name) > MAX_TENSOR_NAME:
            raise InvalidInput(
                f"outputs[{index}]: a tensor name of {len(output.name)} characters; at most {MAX_TENSOR_NAME}"
            )
    requested = [output.name for output in message.outputs]
    return InferRequest(
        model_name=model_name,
        model_version=model_version,
        inputs=inputs,
        id=request_id,
        requested_outputs=requested or None,
        parameters=decode_parameters(message.parameters, where="request"),
        output_parameters={
            output.name: decode_parameters(output.parameters, where=f"output '{output.name}'")
            for output in message.outputs
            if output.parameters
        },
        protocol="grpc",
        shared_inputs=shared_inputs,
    )


def _in_shared_memory(tensor: pb.ModelInferRequest.InferInputTensor) -> bool:
    return bool(tensor.parameters) and not SHARED_MEMORY_PARAMETERS.isdisjoint(tensor.parameters)


def _shared_input(tensor: pb.ModelInferRequest.InferInputTensor) -> SharedMemoryInput | None:
    """The input as placed in shared memory by its parameters, or None (its data is in the message)."""
    if not _in_shared_memory(tensor):
        return None
    parameters = decode_parameters(tensor.parameters, where=f"input '{tensor.name}'")
    shared = shared_memory_input(tensor.name, tensor.datatype, list(tensor.shape), parameters)
    if shared is not None and tensor.HasField("contents"):
        raise InvalidInput(
            f"input '{tensor.name}': its data is in shared memory region '{shared.region}'; set no "
            "'contents' for it"
        )
    return shared


def _decode_input(
    tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | memoryview | None, max_bytes: int
) -> npt.NDArray[Any]:
    name, datatype, shape = tensor.name, tensor.datatype, list(tensor.shape)
    if raw is not None:
        if tensor.HasField("contents"):
            raise InvalidInput(
                f"tensor '{name}': both 'contents' and raw_input_contents are set; "
                "send the data in one of them"
            )
        return tensor_from_buffer(name, datatype, shape, raw, max_bytes=max_bytes)
    dt = by_name(datatype, tensor=name)
    field = CONTENTS_FIELDS.get(dt.name)
    if field is None:
        raise InvalidInput(
            f"tensor '{name}': {datatype} has no typed contents field; send it in raw_input_contents"
        )
    if not tensor.HasField("contents") and check_shape(name, dt, shape, max_bytes=max_bytes) > 0:
        raise InvalidInput(f"tensor '{name}': no data; set contents.{field} or send raw_input_contents")
    wrong = [f.name for f, _ in tensor.contents.ListFields() if f.name != field]
    if wrong:
        raise InvalidInput(
            f"tensor '{name}': {datatype} data goes in contents.{field}, but contents.{wrong[0]} is set"
        )
    values = getattr(tensor.contents, field)
    return tensor_from_values(name, datatype, shape, values, max_bytes=max_bytes)


def decode_parameters(parameters: Mapping[str, pb.InferParameter], *, where: str) -> dict[str, Parameter]:
    """The values of a protobuf parameter map; a parameter with no value set is refused."""
    result: dict[str, Parameter] = {}
    for key, parameter in parameters.items():
        kind = parameter.WhichOneof("parameter_choice")
        if kind is None:
            raise InvalidInput(f"{where} parameter '{key}' has no value")
        result[key] = getattr(parameter, kind)
    return result


def encode_parameters(
    parameters: Mapping[str, Parameter], target: MutableMapping[str, pb.InferParameter]
) -> None:
    """Write ``parameters`` into a protobuf parameter map (bool, int64/uint64, double or string)."""
    for key, value in parameters.items():
        slot = target[key]
        if isinstance(value, bool):
            slot.bool_param = value
        elif isinstance(value, int):
            if value > _INT64_MAX:
                slot.uint64_param = value
            else:
                slot.int64_param = value
        elif isinstance(value, float):
            slot.double_param = value
        else:
            slot.string_param = str(value)


def encode_infer_response(response: InferResponse) -> pb.ModelInferResponse:
    """The protobuf answer: one output entry and one ``raw_output_contents`` entry per output, in order."""
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    encode_parameters(response.parameters, message.parameters)
    for name, array in response.outputs.items():
        datatype = by_numpy(np.asarray(array).dtype).name
        output = message.outputs.add(name=name, datatype=datatype, shape=array.shape)
        placed = response.in_shared_memory.get(name)
        if placed is not None:  # written into the client's shared memory; an empty entry keeps the order
            encode_parameters(placed, output.parameters)
            message.raw_output_contents.append(b"")
        else:
            message.raw_output_contents.append(tensor_to_bytes(array))
    return message
