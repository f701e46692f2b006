"""The REST wire format of an inference: JSON tensors and Triton's binary tensor extension.

A request body is a JSON header, optionally followed by tensor blobs in the order of the inputs that carry
``parameters.binary_data_size``; ``Inference-Header-Content-Length`` gives the JSON length whenever blobs
follow. The reply is JSON, or JSON + blobs for the outputs asked for as binary (``binary_data`` per output,
``binary_data_output`` for all). A *raw binary request* (``Inference-Header-Content-Length: 0``) is one
tensor's bytes and nothing else, for a single-input model: :func:`decode_raw_binary_request`. An input or
output whose parameters place it in a shared-memory region carries no data here (the data plane reads and
writes the region). Hand-written checks instead of a schema library: this is the hot path.

Cost (``benchmarks/decode_memory.py`` measures it): a binary fixed-size tensor is a view of the body; a
binary BYTES tensor at most ~12x its bytes; JSON ``data`` is parsed by orjson into Python values first (up to
~16 bytes of objects per byte of JSON, freed once the arrays are built). The adapter refuses an unknown model
before calling these, and runs them in a thread for a large body (:mod:`large_requests`).
"""

from __future__ import annotations

import math
import secrets
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from ..datatypes import by_name, by_numpy
from ..errors import InvalidInput, PayloadTooLarge
from ..inference import InferRequest, InferResponse, Parameter, SharedMemoryInput, Tensors, TensorSpec
from ..observability.recording import client_request_id
from .large_requests import INLINE_BYTES, SLICE
from .rest_json_slices import PIECE, Cut, NotCut, dumps_sliced, loads_sliced
from .wire_tensors import (
    MAX_TENSOR_NAME,
    check_shape,
    shared_memory_input,
    tensor_from_buffer,
    tensor_from_values,
    tensor_to_bytes,
)

__all__ = [
    "OutputFormat",
    "decode_infer_request",
    "decode_raw_binary_request",
    "decompress_body",
    "encode_infer_response",
]

_SCALARS = (bool, int, float, str)


@dataclass(slots=True)
class OutputFormat:
    """Which outputs the client wants as binary blobs (the rest as JSON ``data``)."""

    binary_default: bool = False
    binary: dict[str, bool] = field(default_factory=dict)

    def is_binary(self, name: str) -> bool:
        return self.binary.get(name, self.binary_default)


def decompress_body(body: bytes, encoding: str, *, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip|deflate`` without ever holding more than ``limit`` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS  # zlib-wrapped, as HTTP's "deflate" means; raw deflate is tried below
    else:
        raise InvalidInput(f"Content-Encoding '{encoding}' is not supported; use gzip or deflate")
    try:
        return _inflate(body, wbits, limit)
    except zlib.error as error:
        if encoding == "deflate":
            try:
                return _inflate(body, -zlib.MAX_WBITS, limit)
            except zlib.error:
                pass
        raise InvalidInput(f"request body is not valid {encoding} data ({error})") from None


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    data = inflater.decompress(body, limit + 1)
    if len(data) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed request body exceeds the limit of {limit} bytes")
    if not inflater.eof:
        raise zlib.error("the compressed data ends early")
    return data


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _parameters(value: Any, where: str) -> dict[str, Parameter]:
    if value is None:
        return {}
    params = _object(value, where)
    for key, item in params.items():
        if not isinstance(item, _SCALARS):
            raise InvalidInput(f"{where}.{key}: a parameter must be a string, number or boolean")
    return params


def decode_infer_request(
    body: bytes, header_length: int | None, *, model_name: str, model_version: str, max_bytes: int
) -> tuple[InferRequest, OutputFormat]:
    """Parse one infer body; ``header_length`` is ``Inference-Header-Content-Length`` (None if absent; 0, a
    raw binary request, goes to :func:`decode_raw_binary_request`)."""
    try:
        header, blobs, cuts = _parse_header(body, header_length, cut=True)
        return _decode_infer_request(
            header, blobs, cuts, model=(model_name, model_version), max_bytes=max_bytes
        )
    except NotCut:  # a cut list is not JSON after all: the document parsed whole says what is wrong
        header, blobs, cuts = _parse_header(body, header_length, cut=False)
        return _decode_infer_request(
            header, blobs, cuts, model=(model_name, model_version), max_bytes=max_bytes
        )


def _decode_infer_request(
    header: dict[str, Any],
    blobs: memoryview,
    cuts: dict[str, Cut],
    *,
    model: tuple[str, str],
    max_bytes: int,
) -> tuple[InferRequest, OutputFormat]:
    model_name, model_version = model
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list):
        raise InvalidInput("request body: 'inputs' must be a list of tensors")
    inputs: Tensors = {}
    shared_inputs: dict[str, SharedMemoryInput] = {}
    offset = 0
    for index, raw in enumerate(raw_inputs):
        tensor = _object(raw, f"inputs[{index}]")
        name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str) or not isinstance(shape, list):
            raise InvalidInput(
                f"inputs[{index}]: every input needs 'name' (string), 'datatype' (string) and 'shape' (list)"
            )
        if len(name) > MAX_TENSOR_NAME:
            raise InvalidInput(
                f"inputs[{index}]: a tensor name of {len(name)} characters; at most {MAX_TENSOR_NAME}"
            )
        if name in inputs or name in shared_inputs:
            raise InvalidInput(f"input '{name}' is given twice")
        params = _parameters(tensor.get("parameters"), f"input '{name}' parameters")
        shared = shared_memory_input(name, datatype, shape, params)
        if shared is not None:
            if "data" in tensor or "binary_data_size" in params:
                raise InvalidInput(
                    f"input '{name}': its data is in shared memory region '{shared.region}'; send no 'data' "
                    "or binary_data_size for it"
                )
            shared_inputs[name] = shared
            continue
        size = params.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InvalidInput(f"input '{name}': binary_data_size must be a non-negative integer")
            if offset + size > len(blobs):
                raise InvalidInput(
                    f"input '{name}': binary_data_size {size} runs past the end of the body "
                    f"({len(blobs) - offset} binary bytes left)"
                )
            inputs[name] = tensor_from_buffer(
                name, datatype, shape, blobs[offset : offset + size], max_bytes=max_bytes
            )
            offset += size
        else:
            data = tensor.get("data")
            if data is None:
                raise InvalidInput(f"input '{name}': give 'data' or parameters.binary_data_size")
            if isinstance(data, str) and data in cuts:
                inputs[name] = _tensor_from_cut(name, datatype, shape, cuts[data], max_bytes=max_bytes)
                continue
            values = data if isinstance(data, list) else [data]
            inputs[name] = tensor_from_values(name, datatype, shape, values, max_bytes=max_bytes)
            _drop_in_slices(values)
    if not all(cut.used for cut in cuts.values()):
        raise InvalidInput("request body: a long 'data' list stands where no input's data is expected")
    if offset != len(blobs):
        raise InvalidInput(
            f"request body has {len(blobs) - offset} bytes after the last binary tensor; "
            "the binary_data_size parameters must add up to the binary part"
        )
    parameters = _parameters(header.get("parameters"), "request parameters")
    output_format = OutputFormat(binary_default=parameters.pop("binary_data_output", False) is True)
    requested, output_parameters = _requested_outputs(header.get("outputs"), output_format)
    request_id = client_request_id(header.get("id", ""))
    request = InferRequest(
        model_name=model_name,
        model_version=model_version,
        inputs=inputs,
        id=request_id,
        requested_outputs=requested,
        parameters=parameters,
        output_parameters=output_parameters,
        protocol="http",
        shared_inputs=shared_inputs,
    )
    return request, output_format


def decode_raw_binary_request(
    body: bytes, spec: TensorSpec, *, batching: bool, model_name: str, model_version: str, max_bytes: int
) -> tuple[InferRequest, OutputFormat]:
    """A raw binary request: ``body`` is the bytes of the model's one input (``spec``), as a batch of 1.

    As in Triton: at most one dimension besides the batch may be variable (its size follows from the byte
    count); a BYTES input holds one element, the whole body; every output comes back binary.
    """
    dims = list(spec.shape)
    if batching:
        dims[0] = 1
    variable = [index for index, size in enumerate(dims) if size < 0]
    if len(variable) > 1:
        raise InvalidInput(
            f"input '{spec.name}' has shape {list(spec.shape)}: a raw binary request "
            "(Inference-Header-Content-Length: 0) cannot tell more than one variable dimension besides the "
            "batch; send a JSON header with the shape"
        )
    datatype = by_name(spec.datatype, tensor=spec.name)
    if datatype.itemsize == 0:  # BYTES: the body is the one element
        dims = [1 if size < 0 else size for size in dims]
        if math.prod(dims) != 1:
            raise InvalidInput(
                f"input '{spec.name}' has shape {list(spec.shape)}: a raw binary request carries one BYTES "
                "element; send a JSON header for more"
            )
        array = np.empty(1, dtype=np.object_)
        array[0] = bytes(body)
        inputs: Tensors = {spec.name: array.reshape(dims)}
    else:
        if variable:
            row = math.prod(size for size in dims if size >= 0) * datatype.itemsize
            if row == 0 or len(body) % row:
                raise InvalidInput(
                    f"input '{spec.name}' ({spec.datatype}, shape {list(spec.shape)}): {len(body)} bytes "
                    f"are not a whole number of {row}-byte steps along its variable dimension"
                )
            dims[variable[0]] = len(body) // row
        inputs = {spec.name: tensor_from_buffer(spec.name, spec.datatype, dims, body, max_bytes=max_bytes)}
    request = InferRequest(model_name=model_name, model_version=model_version, inputs=inputs, protocol="http")
    return request, OutputFormat(binary_default=True)


def _parse_header(
    body: bytes, header_length: int | None, *, cut: bool
) -> tuple[dict[str, Any], memoryview, dict[str, Cut]]:
    """The JSON header (a large one with its long lists cut out, see :mod:`rest_json_slices`), the binary
    part after it, and the cut lists."""
    view = memoryview(body)
    if header_length is None:
        header_view, blobs = view, view[:0]
    else:
        if not 0 < header_length <= len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length {header_length} must be between 1 and the body size "
                f"({len(body)} bytes): the length of the JSON header in front of the binary tensors"
            )
        header_view, blobs = view[:header_length], view[header_length:]
    cuts: dict[str, Cut] = {}
    try:
        if cut and len(header_view) >= INLINE_BYTES:  # in a thread: large lists parsed in pieces
            header, cuts = loads_sliced(body if header_length is None else bytes(header_view))
        else:
            header = orjson.loads(header_view)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"request body is not valid JSON: {error}") from None
    return _object(header, "request body"), blobs, cuts


def _tensor_from_cut(
    name: str, datatype: str, shape: list[Any], cut: Cut, *, max_bytes: int
) -> npt.NDArray[Any]:
    """An input whose long flat ``data`` list was cut out of the body: the shape checked first, then the
    values converted piece by piece with :func:`tensor_from_values`'s checks and messages."""
    count = check_shape(name, by_name(datatype, tensor=name), shape, max_bytes=max_bytes)

    def convert(values: list[Any]) -> npt.NDArray[Any]:
        return tensor_from_values(name, datatype, [len(values)], values, max_bytes=max_bytes)

    values = cut.values(convert)
    if values.size != count:  # tensor_from_values's words (converting the values again would double the cost)
        dims = ", ".join(str(dim) for dim in shape)
        raise InvalidInput(f"tensor '{name}': shape [{dims}] needs {count} values, got {values.size}")
    return values.reshape(tuple(shape))


def _drop_in_slices(values: list[Any]) -> None:
    """Free a parsed JSON ``data`` list from its end, :data:`SLICE` values at a time: the decoder runs in a
    thread for a large body, and one deallocation of millions of values would hold the GIL throughout."""
    while len(values) > SLICE:
        del values[-SLICE:]


def _requested_outputs(
    value: Any, output_format: OutputFormat
) -> tuple[list[str] | None, dict[str, dict[str, Parameter]]]:
    """The names asked for and each output's parameters (the data plane judges them); ``binary_data``
    goes to ``output_format`` instead."""
    output_parameters: dict[str, dict[str, Parameter]] = {}
    if value is None:
        return None, output_parameters
    if not isinstance(value, list):
        raise InvalidInput("request 'outputs' must be a list of {'name': ...} objects")
    names: list[str] = []
    for index, raw in enumerate(value):
        output = _object(raw, f"outputs[{index}]")
        name = output.get("name")
        if not isinstance(name, str) or len(name) > MAX_TENSOR_NAME:
            raise InvalidInput(
                f"outputs[{index}]: 'name' must be a string of at most {MAX_TENSOR_NAME} characters"
            )
        params = _parameters(output.get("parameters"), f"output '{name}' parameters")
        if "binary_data" in params:
            output_format.binary[name] = params.pop("binary_data") is True
        if params:
            output_parameters[name] = params
        names.append(name)
    return names, output_parameters


def encode_infer_response(response: InferResponse, output_format: OutputFormat) -> tuple[bytes, int | None]:
    """The reply body, and the JSON header's length when binary blobs follow it (else None)."""
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    sliced: dict[str, npt.NDArray[Any]] = {}  # placeholder -> a large array written in pieces
    for name, array in response.outputs.items():
        datatype = by_numpy(array.dtype).name
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        placed = response.in_shared_memory.get(name)
        if placed is not None:  # written into the client's shared memory: its parameters say where
            entry["parameters"] = placed
        elif output_format.is_binary(name):
            blob = tensor_to_bytes(array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _json_data(name, array)
            if isinstance(entry["data"], np.ndarray) and entry["data"].nbytes >= PIECE:
                placeholder = f"{secrets.token_hex(16)}:{len(sliced)}"
                sliced[placeholder], entry["data"] = entry["data"], placeholder
        outputs.append(entry)
    header: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id:
        header["id"] = response.id
    if response.parameters:
        header["parameters"] = response.parameters
    encoded = dumps_sliced(header, sliced)
    if not blobs:
        return encoded, None
    return b"".join([encoded, *blobs]), len(encoded)


def _json_data(name: str, array: np.ndarray[Any, Any]) -> Any:
    flat = array.reshape(-1)
    if flat.dtype.kind != "O":
        return np.ascontiguousarray(flat)
    try:
        return [item.decode() if isinstance(item, bytes) else str(item) for item in flat]
    except UnicodeDecodeError:
        raise InvalidInput(
            f"output '{name}' holds bytes that are not UTF-8 text; "
            "ask for it with parameters.binary_data: true"
        ) from None
