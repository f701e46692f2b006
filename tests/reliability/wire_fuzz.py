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

DATATYPES: tuple[str, ...] = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32")
DATATYPES += ("INT64", "FP16", "FP32", "FP64", "BYTES")
_ITEMSIZE = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "UINT32": 4, "INT32": 4}
_ITEMSIZE |= {"FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8, "BYTES": 0}
_NUMPY = {"BOOL": "?", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "i1"}
_NUMPY |= {"INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
MAX_BYTES = 1 << 20  # the decoders' per-tensor bound in these tests: big enough for every valid case


def _one_of(values: list[Any]) -> st.SearchStrategy[Any]:
    """One of ``values``, drawn by index: the strategy's repr (which hypothesis prints, and warns about
    when long) names no value, so long strings among them cost nothing."""
    return st.integers(0, len(values) - 1).map(lambda index: values[index])


# Few draws per case (each costs about 50 us): fixed lists of tricky values, not free text or recursion.
_NAMES = _one_of(["INPUT0", "INPUT0", "INPUT1", "x", "features", "", "é", "a" * 300, "../x", "\x00"])
_BAD_DATATYPE_LIST = ["fp32", "FLOAT", "", "INT128", "BF16", "STRING", "TYPE_FP32", "²"]
_JUNK: list[Any] = [None, True, 0, -1, 1.5, 2**64, -(2**63) - 1, 1e308, "", "x", "²", "9" * 5000, [], {}]
_JUNK += [[None], [[1, 2], [3]], [[[]]], {"a": 1}, {"name": []}, [1, "a", None], [True] * 3, [[1.5]] * 2]
_JSON_ANY = _one_of(_JUNK)
_JSON_LEAVES = st.sampled_from([None, True, False, 0, -1, 7, 2**64, 0.5, "", "yes", "²"])

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
        return str(error.code.value)
    request = result[0] if isinstance(result, tuple) else result
    assert isinstance(request, InferRequest)
    for name, array in request.inputs.items():
        assert isinstance(array, np.ndarray), f"input {name!r} decoded to {type(array).__name__}"
    return "decoded"


_SEED = st.integers(0, 2**32 - 1)
_SMALL_SHAPES = st.lists(st.integers(0, 4), max_size=4)
_SHAPES = st.one_of(
    _SMALL_SHAPES,
    _SMALL_SHAPES,
    _SMALL_SHAPES,
    st.lists(st.sampled_from([-3, -1, 0, 1, 3, 2**31, 2**40, 2**62, 2**63 - 1, 2**64, -(2**63)]), max_size=4),
    st.integers(60, 80).map(lambda rank: [1] * rank),  # around the rank cap of 64
)
_DRAWN_DATATYPES = st.sampled_from(DATATYPES)
_TENTHS = st.integers(0, 9)


def _count(shape: list[int]) -> int:
    """Elements of ``shape``; -1 where a dimension is negative."""
    return math.prod(shape) if all(d >= 0 for d in shape) else -1


def _values(datatype: str, count: int, seed: int) -> list[Any]:
    """``count`` values of ``datatype`` as JSON carries them, made from ``seed`` (one draw, not ``count``)."""
    rng = np.random.default_rng(seed)
    if datatype == "BYTES":
        return ["".join(chr(c) for c in rng.integers(32, 0x2FF, rng.integers(0, 5))) for _ in range(count)]
    numpy_type = np.dtype(_NUMPY[datatype])
    values = np.frombuffer(rng.bytes(count * numpy_type.itemsize), numpy_type)
    if numpy_type.kind == "f":  # JSON has no NaN or infinity (raw garbage bodies cover those)
        values = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=-1.0)
    return list(values.tolist())


def _nested(values: list[Any], shape: list[int]) -> Any:
    """``values`` nested as ``shape`` (JSON's other way of sending a tensor)."""
    return np.array(values, dtype=object).reshape(shape).tolist()


_BREAKAGES = st.integers(0, 15)  # 0..6 break one field; the rest leave the tensor well-formed


def _json_tensor(datatype: str, shape: list[int], name: str, breakage: int, seed: int, junk: Any) -> Any:  # noqa: PLR0917
    """A JSON input: well-formed (data matching datatype and shape) unless ``breakage`` picks a field to
    break with ``junk``."""
    count = _count(shape)
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    if 0 <= count <= 64:
        values = _values(datatype, count, seed)
        tensor["data"] = _nested(values, shape) if seed % 2 and 1 < len(shape) <= 32 and count else values
    else:
        tensor["data"] = _values(datatype, seed % 9, seed)
    if breakage == 1:
        tensor["datatype"] = _BAD_DATATYPE_LIST[seed % len(_BAD_DATATYPE_LIST)]
    elif breakage in (2, 3, 5):
        tensor[{2: "data", 3: "shape", 5: "parameters"}[breakage]] = junk
    elif breakage == 4:
        del tensor[sorted(tensor)[seed % len(tensor)]]
    elif breakage == 6:
        tensor["data"] = [*tensor["data"], junk]
    return tensor


_JSON_TENSORS = st.builds(_json_tensor, _DRAWN_DATATYPES, _SHAPES, _NAMES, _BREAKAGES, _SEED, _JSON_ANY)
_OUTPUTS = st.sampled_from(
    [
        [],
        [{"name": "OUTPUT0"}],
        [{"name": "OUTPUT0", "parameters": {"binary_data": True}}],
        [{"name": 1}],
        [{"name": "y", "parameters": {"classification": 2}}],
        [{"name": "OUTPUT0"}, {"name": "OUTPUT0"}],
    ]
)
_REQUEST_PARAMETERS = st.sampled_from(
    [{}, {"binary_data_output": True}, {"priority": 1}, {"timeout": -5}, {"x": [1]}, {"sequence_id": 2**70}]
)
_IDS = _one_of(["", "id-1", "x" * 20_000, 7])


def _json_header(inputs: list[Any], extras: int, outputs: Any, parameters: Any, request_id: Any) -> Any:
    """The JSON header: ``extras`` chooses which optional fields it carries (bit 0 outputs, 1 parameters,
    2 id)."""
    header: dict[str, Any] = {"inputs": inputs}
    if extras & 1:
        header["outputs"] = outputs
    if extras & 2:
        header["parameters"] = parameters
    if extras & 4:
        header["id"] = request_id
    return header


_JSON_HEADERS = st.builds(
    _json_header,
    st.lists(_JSON_TENSORS, max_size=3),
    st.integers(0, 7),
    _OUTPUTS | _JSON_ANY,
    _REQUEST_PARAMETERS | _JSON_ANY,
    _IDS | _JSON_ANY,
)


def _dumps(value: Any) -> bytes:
    """JSON as a client may send it: integers of any size, NaN and Infinity included (orjson refuses both)."""
    return json.dumps(value).encode()


def _mutated(body: bytes, kind: int, seed: int) -> bytes:
    """``body`` cut short (kind 0), with a byte flipped (kind 1), or as is."""
    if not body:
        return body
    at = seed % len(body)
    if kind == 0:
        return body[:at]
    if kind == 1:
        return body[:at] + bytes([body[at] ^ (1 + seed % 255)]) + body[at + 1 :]
    return body


_DEEP = [
    "[" * 100_000,
    '{"inputs":' + "[" * 100_000,
    '{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":' + "[" * 65 + "1" + "]" * 65 + "}]}",
    '{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":' + "[" * 1000 + '"a"' + "]" * 1000 + "}]}",
    '{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[NaN]}]}',
    '{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[Infinity]}]}',
]


def _json_body(kind: int, header: Any, junk: Any, garbage: bytes, seed: int) -> bytes:
    if kind == 0:
        return garbage
    if kind == 1:  # nesting far past any parser's or numpy's depth, and JSON's non-numbers
        return _DEEP[seed % len(_DEEP)].encode()
    if kind == 3:  # a body that is not an object
        return _dumps(junk)
    body = _dumps(header)
    return _mutated(body, seed % 3, seed) if kind == 2 else body


def json_bodies() -> st.SearchStrategy[bytes]:
    """A REST JSON infer body: mostly well-formed JSON, sometimes mutated bytes, deep nesting or garbage."""
    return st.builds(_json_body, st.integers(0, 19), _JSON_HEADERS, _JSON_ANY, st.binary(max_size=64), _SEED)


def _blob(datatype: str, count: int, seed: int) -> bytes:
    """The binary form of ``count`` elements: the exact size mostly; sometimes a byte more or less, or a
    BYTES length prefix that lies."""
    rng = np.random.default_rng(seed)
    if datatype == "BYTES":
        items = [rng.bytes(int(rng.integers(0, 5))) for _ in range(count)]
        blob = b"".join(struct.pack("<I", len(item)) + item for item in items)
        if seed % 5 == 0:
            blob = struct.pack("<I", int(rng.integers(0, 2**32))) + blob[4:]
        return blob
    size = count * _ITEMSIZE[datatype]
    return rng.bytes(max(0, size + [0, 0, 0, 0, -1, 1, 7][seed % 7]))


def _binary_input(datatype: str, shape: list[int], name: str, declared: Any, seed: int) -> tuple[Any, bytes]:
    blob = _blob(datatype, min(max(_count(shape), 0), 64), seed)
    if seed % 7 == 0:
        datatype = _BAD_DATATYPE_LIST[seed % len(_BAD_DATATYPE_LIST)]
    size = len(blob) if seed % 4 else declared
    return {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": size},
    }, blob


_BINARY_INPUTS = st.builds(
    _binary_input, _DRAWN_DATATYPES, _SHAPES, _NAMES, st.integers(-2, 2**40) | _JSON_LEAVES, _SEED
)


def _binary_request(parts: list[tuple[Any, bytes]], outputs: bool, seed: int) -> tuple[bytes, int | None]:
    header = _dumps(
        {"inputs": [meta for meta, _ in parts], **({"outputs": [{"name": "y"}]} if outputs else {})}
    )
    body = header + b"".join(blob for _, blob in parts)
    length: int | None = [len(header), len(header), len(header), None, seed % (len(body) + 3) - 1][seed % 5]
    return (_mutated(body, seed % 2, seed) if seed % 10 == 0 else body), length


def binary_requests() -> st.SearchStrategy[tuple[bytes, int | None]]:
    """A body in Triton's binary tensor extension and its Inference-Header-Content-Length (or None)."""
    return st.builds(_binary_request, st.lists(_BINARY_INPUTS, max_size=3), st.booleans(), _SEED)


def _raw_case(
    datatype: str, shape: list[int], batching: bool, body: bytes
) -> tuple[bytes, str, tuple[int, ...], bool]:
    # A batching model's first dimension is the batch (-1).
    return body, datatype, (-1, *shape) if batching else tuple(shape), batching


def raw_binary_cases() -> st.SearchStrategy[tuple[bytes, str, tuple[int, ...], bool]]:
    """A raw binary request (Inference-Header-Content-Length: 0): body, the one input's datatype and model
    shape, and whether the model batches."""
    dims = st.lists(st.sampled_from([-1, 0, 1, 2, 3, 4]), max_size=4)
    return st.builds(_raw_case, _DRAWN_DATATYPES, dims, st.booleans(), st.binary(max_size=96))


_CONTENTS = {
    "BOOL": "bool_contents",
    "BYTES": "bytes_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT64": "int64_contents",
    "UINT64": "uint64_contents",
    **dict.fromkeys(["INT8", "INT16", "INT32"], "int_contents"),
    **dict.fromkeys(["UINT8", "UINT16", "UINT32"], "uint_contents"),
}
_CONTENTS_FIELDS = sorted(set(_CONTENTS.values()))
_CONTENTS_TYPES = {
    "bool_contents": "?",
    "fp32_contents": "<f4",
    "fp64_contents": "<f8",
    "int64_contents": "<i8",
}
_CONTENTS_TYPES |= {"uint64_contents": "<u8", "int_contents": "<i4", "uint_contents": "<u4"}


def _fill_contents(tensor: Any, datatype: str, count: int, seed: int) -> None:
    """Typed contents for ``count`` elements: the right field and count mostly, else a wrong one."""
    field = _CONTENTS.get(datatype, "fp32_contents")
    if seed % 10 == 0:
        field = _CONTENTS_FIELDS[seed % len(_CONTENTS_FIELDS)]
    size = max(0, count + [0, 0, 0, 0, 1, -1][seed % 6]) if seed % 17 else 0
    rng = np.random.default_rng(seed)
    if field == "bytes_contents":
        values: list[Any] = [rng.bytes(int(rng.integers(0, 5))) for _ in range(size)]
    else:
        numpy_type = np.dtype(_CONTENTS_TYPES[field])
        values = np.frombuffer(rng.bytes(size * numpy_type.itemsize), numpy_type).tolist()
    getattr(tensor.contents, field).extend(values)


def _grpc_request(
    inputs: list[tuple[str, list[int], str, int]],
    raw_mode: bool,
    outputs: list[str],
    request_id: str,
    seed: int,
) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m", id=request_id)
    for datatype, dims, name, tensor_seed in inputs:
        shape = [max(min(d, 2**63 - 1), -(2**63)) for d in dims]  # what int64 can carry
        tensor = message.inputs.add(name=name, datatype=datatype, shape=shape)
        count = min(max(_count(shape), 0), 64)
        if raw_mode:
            known = datatype in _ITEMSIZE
            message.raw_input_contents.append(_blob(datatype, count, tensor_seed) if known else b"\x01" * 4)
            if tensor_seed % 10 == 0:
                tensor.contents.fp32_contents.append(1.0)  # both raw and typed: refused
        else:
            _fill_contents(tensor, datatype, count, tensor_seed)
        if tensor_seed % 15 == 1:
            tensor.parameters["shared_memory_region"].string_param = "region"
        if tensor_seed % 10 == 2:
            tensor.parameters["p"].CopyFrom(pb.InferParameter())  # a parameter with no value
    if raw_mode and seed % 10 == 0:
        message.raw_input_contents.append(b"extra")
    for index, name in enumerate(outputs):
        output = message.outputs.add(name=name)
        if (seed + index) % 10 == 0:
            output.parameters["binary_data"].bool_param = True
    if seed % 2:
        message.parameters["priority"].int64_param = seed - 2**31
    return message


def grpc_requests() -> st.SearchStrategy[pb.ModelInferRequest]:
    """A ModelInferRequest with typed contents or raw_input_contents, mostly well-formed."""
    datatypes = _DRAWN_DATATYPES | st.sampled_from(_BAD_DATATYPE_LIST)
    inputs = st.lists(st.tuples(datatypes, _SHAPES, _NAMES, _SEED), max_size=3)
    ids = _one_of(["", "id-1", "x" * 20_000])
    return st.builds(_grpc_request, inputs, st.booleans(), st.lists(_NAMES, max_size=2), ids, _SEED)
