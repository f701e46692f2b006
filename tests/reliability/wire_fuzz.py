"""Hypothesis strategies for infer requests on each wire format, and the property every decoder must keep.

The property (:func:`decoded_or_refused`): a decoder either returns a request whose tensors are arrays, or
raises a :class:`ModelportError` whose code is a client error. Any other exception (a
``ValueError`` from numpy, a ``RecursionError``, a ``MemoryError``...) would reach the client as a 500 /
INTERNAL, so it fails the property. The strategies mix well-formed requests (data that matches the shape),
near misses (one field wrong) and garbage, so both the accepting and the refusing paths are exercised.

Used by ``test_decoder_fuzz.py`` (10,000 cases per protocol, in CI), ``test_server_fuzz.py`` (a few hundred
through the real server) and ``benchmarks/fuzz.py`` (100,000 per protocol).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st
from modelport.server.errors import ErrorCode, ModelportError
from modelport.server.inference import InferRequest
from modelport.server.protocols.generated import grpc_service_pb2 as pb

__all__ = [
    "DATATYPES",
    "MAX_BYTES",
    "Verdict",
    "binary_requests",
    "decoded_or_refused",
    "grpc_requests",
    "json_bodies",
    "raw_binary_cases",
]

DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64")
DATATYPES += ("FP16", "FP32", "FP64", "BYTES")
_ITEMSIZE = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "UINT32": 4, "INT32": 4}
_ITEMSIZE |= {"FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8, "BYTES": 0}
MAX_BYTES = 1 << 20  # the decoders' per-tensor bound in these tests: big enough for every valid case
_NAMES = st.sampled_from(["INPUT0", "INPUT1", "x", "features"]) | st.text(max_size=12)
_BAD_DATATYPES = st.sampled_from(["fp32", "FLOAT", "", "INT128", "BF16", "STRING"]) | st.text(max_size=6)

Verdict = str  # "decoded" or the refusing error's code


def decoded_or_refused(decode: Callable[[], Any]) -> Verdict:
    """Run ``decode``; "decoded" or the client-error code it refused with. Anything else is a failure.

    A decoded request must hold arrays of the declared shapes (checked by the caller's decoder contract:
    every tensor is a numpy array).
    """
    try:
        result = decode()
    except ModelportError as error:
        assert error.code is not ErrorCode.INTERNAL, f"INTERNAL for a client's request: {error.message}"
        assert error.message, "an error without a message"
        return error.code.value
    request = result[0] if isinstance(result, tuple) else result
    assert isinstance(request, InferRequest)
    for name, array in request.inputs.items():
        assert isinstance(array, np.ndarray), f"input {name!r} decoded to {type(array).__name__}"
    return "decoded"


def _shapes(max_rank: int = 4) -> st.SearchStrategy[list[int]]:
    small = st.lists(st.integers(0, 4), max_size=max_rank)
    odd = st.lists(
        st.integers(-3, 3) | st.sampled_from([2**31, 2**40, 2**63 - 1, 2**64, -(2**63)]), max_size=max_rank
    )
    deep = st.lists(st.integers(0, 1), min_size=60, max_size=80)  # around the rank cap of 64
    return st.one_of(small, small, small, odd, deep)


def _values(datatype: str) -> st.SearchStrategy[Any]:
    if datatype == "BOOL":
        return st.booleans()
    if datatype == "BYTES":
        return st.text(max_size=6)
    if datatype.startswith("FP"):
        return st.floats(width=16 if datatype == "FP16" else 32, allow_nan=False, allow_infinity=False)
    bits = _ITEMSIZE[datatype] * 8
    low, high = (0, 2**bits - 1) if datatype.startswith("U") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return st.integers(low, high)


_JSON_LEAVES = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5)
_JSON_ANY = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _json_tensor(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON input: a valid one (data matches datatype and shape) most often, else one field broken."""
    datatype = draw(st.sampled_from(DATATYPES))
    shape = draw(_shapes())
    count = math.prod(shape) if all(d >= 0 for d in shape) else -1
    tensor: dict[str, Any] = {"name": draw(_NAMES), "datatype": datatype, "shape": shape}
    if 0 <= count <= 64:
        values = draw(st.lists(_values(datatype), min_size=count, max_size=count))
        nested = draw(st.booleans()) and len(shape) > 1 and count > 0
        tensor["data"] = np.array(values, dtype=object).reshape(shape).tolist() if nested else values
    else:
        tensor["data"] = draw(st.lists(_values(datatype), max_size=8))
    breakage = draw(st.integers(0, 9))
    if breakage == 1:
        tensor["datatype"] = draw(_BAD_DATATYPES)
    elif breakage == 2:
        tensor["data"] = draw(_JSON_ANY)
    elif breakage == 3:
        tensor["shape"] = draw(_JSON_ANY)
    elif breakage == 4:
        del tensor[draw(st.sampled_from(sorted(tensor)))]
    elif breakage == 5:
        tensor["parameters"] = draw(_JSON_ANY)
    elif breakage == 6 and isinstance(tensor["data"], list):
        tensor["data"] = [*tensor["data"], draw(_JSON_ANY)]
    return tensor


@st.composite
def _json_header(draw: st.DrawFn, tensors: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    header: dict[str, Any] = {"inputs": draw(st.lists(tensors, max_size=3))}
    if draw(st.booleans()):
        header["id"] = draw(st.text(max_size=8) | _JSON_ANY)
    if draw(st.booleans()):
        header["outputs"] = draw(
            st.lists(st.fixed_dictionaries({"name": _NAMES}, optional={"parameters": _JSON_ANY}), max_size=3)
            | _JSON_ANY
        )
    if draw(st.booleans()):
        header["parameters"] = draw(
            st.dictionaries(st.text(max_size=8), _JSON_LEAVES, max_size=3)
            | st.just({"binary_data_output": True})
            | _JSON_ANY
        )
    if draw(st.integers(0, 9)) == 0:
        header = draw(_JSON_ANY)
    return header


def _dumps(value: Any) -> bytes:
    """JSON as a client may send it: integers of any size, NaN and Infinity included (orjson refuses both)."""
    return json.dumps(value).encode()


def _mutated(body: bytes, draw: st.DrawFn) -> bytes:
    """``body`` cut short, with a byte flipped, or as is."""
    if not body:
        return body
    kind = draw(st.integers(0, 5))
    at = draw(st.integers(0, len(body) - 1))
    if kind == 0:
        return body[:at]
    if kind == 1:
        return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    return body


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    """A REST JSON infer body: mostly well-formed JSON, sometimes mutated bytes, deep nesting or garbage."""
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(st.binary(max_size=64))
    if kind == 1:  # nesting far past any parser's or numpy's depth
        depth = draw(st.sampled_from([65, 1_000, 100_000]))
        opener = draw(
            st.sampled_from(
                ["[", '{"inputs":[', '{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":']
            )
        )
        return (opener + "[" * depth).encode()
    body = _dumps(draw(_json_header(_json_tensor())))
    return _mutated(body, draw) if kind == 2 else body


def _blob(datatype: str, count: int, draw: st.DrawFn) -> bytes:
    """The binary form of ``count`` elements: the exact size, or (sometimes) a wrong one."""
    if datatype == "BYTES":
        items = draw(st.lists(st.binary(max_size=5), min_size=count, max_size=count))
        blob = b"".join(struct.pack("<I", len(item)) + item for item in items)
        if draw(st.integers(0, 4)) == 0:  # a length prefix that lies
            blob = struct.pack("<I", draw(st.integers(0, 2**32 - 1))) + blob[4:]
        return blob
    size = count * _ITEMSIZE[datatype]
    return draw(st.binary(min_size=size, max_size=size) | st.binary(max_size=size + 9))


@st.composite
def binary_requests(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A body in Triton's binary tensor extension and its Inference-Header-Content-Length (or None)."""
    inputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for _ in range(draw(st.integers(0, 3))):
        datatype = draw(st.sampled_from(DATATYPES))
        shape = draw(_shapes())
        count = math.prod(shape) if all(d >= 0 for d in shape) else 0
        blob = _blob(datatype, min(count, 64), draw)
        declared = draw(st.just(len(blob)) | st.integers(-2, 2**40) | _JSON_LEAVES)
        inputs.append(
            {
                "name": draw(_NAMES),
                "datatype": draw(st.just(datatype) | _BAD_DATATYPES),
                "shape": shape,
                "parameters": {"binary_data_size": declared},
            }
        )
        blobs.append(blob)
    header = _dumps({"inputs": inputs, **draw(st.just({}) | st.just({"outputs": [{"name": "y"}]}))})
    body = header + b"".join(blobs)
    length = draw(st.just(len(header)) | st.integers(-1, len(body) + 2) | st.none())
    return _mutated(body, draw) if draw(st.integers(0, 9)) == 0 else body, length


@st.composite
def raw_binary_cases(draw: st.DrawFn) -> tuple[bytes, str, tuple[int, ...], bool]:
    """A raw binary request (Inference-Header-Content-Length: 0): body, the one input's datatype and model
    shape, and whether the model batches."""
    datatype = draw(st.sampled_from(DATATYPES))
    shape = tuple(draw(st.lists(st.sampled_from([-1, 0, 1, 2, 3, 4]), max_size=4)))
    batching = draw(st.booleans())
    if batching:  # a batching model's first dimension is the batch (-1)
        shape = (-1, *shape)
    return draw(st.binary(max_size=96)), datatype, shape, batching


_INT64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def grpc_requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    """A ModelInferRequest with typed contents or raw_input_contents, mostly well-formed."""
    message = pb.ModelInferRequest(model_name="m", id=draw(st.text(max_size=8)))
    raw_mode = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        datatype = draw(st.sampled_from(DATATYPES) | _BAD_DATATYPES)
        shape = draw(_shapes().map(lambda s: [max(min(d, 2**63 - 1), -(2**63)) for d in s]))
        tensor = message.inputs.add(name=draw(_NAMES), datatype=datatype, shape=shape)
        count = math.prod(shape) if all(d >= 0 for d in shape) else 0
        known = datatype in _ITEMSIZE
        if raw_mode:
            blob = _blob(datatype, min(count, 64), draw) if known else draw(st.binary(max_size=16))
            message.raw_input_contents.append(blob)
            if draw(st.integers(0, 9)) == 0:
                tensor.contents.fp32_contents.append(1.0)  # both raw and typed: refused
        else:
            _fill_contents(tensor, datatype, min(count, 64), draw)
        if draw(st.integers(0, 14)) == 0:
            tensor.parameters["shared_memory_region"].string_param = "region"
        if draw(st.integers(0, 9)) == 0:
            tensor.parameters["p"].CopyFrom(pb.InferParameter())  # a parameter with no value
    if raw_mode and draw(st.integers(0, 9)) == 0:
        message.raw_input_contents.append(b"extra")
    for _ in range(draw(st.integers(0, 2))):
        output = message.outputs.add(name=draw(_NAMES))
        if draw(st.integers(0, 9)) == 0:
            output.parameters["binary_data"].bool_param = True
    if draw(st.booleans()):
        message.parameters["priority"].int64_param = draw(_INT64)
    return message


def _fill_contents(tensor: Any, datatype: str, count: int, draw: st.DrawFn) -> None:
    fields = {
        "BOOL": ("bool_contents", st.booleans()),
        "BYTES": ("bytes_contents", st.binary(max_size=5)),
        "FP32": ("fp32_contents", st.floats(width=32)),
        "FP64": ("fp64_contents", st.floats()),
        "INT64": ("int64_contents", _INT64),
        "UINT64": ("uint64_contents", st.integers(0, 2**64 - 1)),
    }
    for small in ("INT8", "INT16", "INT32"):
        fields[small] = ("int_contents", st.integers(-(2**31), 2**31 - 1))
    for small in ("UINT8", "UINT16", "UINT32"):
        fields[small] = ("uint_contents", st.integers(0, 2**32 - 1))
    field, values = fields.get(datatype, ("fp32_contents", st.floats(width=32)))
    if draw(st.integers(0, 9)) == 0:  # the wrong field for the datatype
        field, values = draw(st.sampled_from(list(fields.values())))
    size = draw(st.just(count) | st.integers(0, count + 3))
    getattr(tensor.contents, field).extend(draw(st.lists(values, min_size=size, max_size=size)))
