"""One infer request, encoded once and replayed by the load generator.

REST: the binary tensor extension as ``tritonclient`` sends it (JSON header, then the tensors' bytes, with
``Inference-Header-Content-Length``), or plain JSON (``data`` lists, outputs asked as JSON too). gRPC: a
length-prefixed ``ModelInferRequest`` with ``raw_input_contents``, the bytes h2load posts as a gRPC call.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from ..datatypes import by_numpy
from ..protocols.generated import grpc_service_pb2 as pb
from ..protocols.wire_tensors import tensor_to_bytes

__all__ = ["RestBody", "datatype_of", "grpc_message", "grpc_request", "rest_body"]


@dataclass(frozen=True)
class RestBody:
    """A REST infer body; ``header_length`` is the JSON part's length when tensors follow it, else None."""

    body: bytes
    header_length: int | None

    @property
    def headers(self) -> dict[str, str]:
        if self.header_length is None:
            return {"Content-Type": "application/json"}
        return {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(self.header_length),
        }


def datatype_of(array: npt.NDArray[Any]) -> str:
    """The Open Inference Protocol datatype of ``array`` (BYTES for strings and objects)."""
    return "BYTES" if array.dtype.kind in "OSU" else by_numpy(array.dtype).name


def _json_values(array: npt.NDArray[Any]) -> list[Any]:
    if array.dtype.kind == "O":
        return [item.decode() if isinstance(item, bytes) else str(item) for item in array.ravel().tolist()]
    values: list[Any] = array.ravel().tolist()
    return values


def rest_body(tensors: Mapping[str, npt.NDArray[Any]], outputs: Sequence[str], *, binary: bool) -> RestBody:
    """The REST body for ``tensors``, asking for ``outputs`` in the same encoding."""
    inputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, array in tensors.items():
        entry: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": datatype_of(array)}
        if binary:
            blob = tensor_to_bytes(array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _json_values(array)
        inputs.append(entry)
    request: dict[str, Any] = {"inputs": inputs}
    if outputs:
        request["outputs"] = [{"name": name, "parameters": {"binary_data": binary}} for name in outputs]
    else:  # every output, in the request's encoding
        request["parameters"] = {"binary_data_output": binary}
    header = json.dumps(request).encode()
    if not binary:
        return RestBody(header, None)
    return RestBody(header + b"".join(blobs), len(header))


def grpc_request(
    model: str, version: str, tensors: Mapping[str, npt.NDArray[Any]], outputs: Sequence[str]
) -> pb.ModelInferRequest:
    """The ``ModelInferRequest`` for ``tensors`` (raw contents), asking for ``outputs``."""
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    for name, array in tensors.items():
        tensor = request.inputs.add()
        tensor.name = name
        tensor.datatype = datatype_of(array)
        tensor.shape.extend(array.shape)
        request.raw_input_contents.append(tensor_to_bytes(array))
    for name in outputs:
        request.outputs.add().name = name
    return request


def grpc_message(request: pb.ModelInferRequest) -> bytes:
    """``request`` as one gRPC message on the wire: uncompressed flag, 4-byte big-endian length, payload."""
    payload = request.SerializeToString()
    return struct.pack(">BI", 0, len(payload)) + payload
