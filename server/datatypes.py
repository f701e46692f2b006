"""The one table of tensor datatypes: Open Inference Protocol names, numpy, ONNX and Triton's model config.

BYTES tensors are numpy ``object`` arrays whose elements are ``bytes``; on the wire each element is a 4-byte
little-endian length followed by its bytes (the binary tensor extension and ``raw_input_contents``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import InvalidInput

__all__ = [
    "DATATYPES",
    "Datatype",
    "by_name",
    "by_numpy",
    "by_onnx",
    "decode_bytes_tensor",
    "encode_bytes_tensor",
]


@dataclass(frozen=True, slots=True)
class Datatype:
    """One tensor element type as every layer of the server spells it."""

    name: str  # Open Inference Protocol: "FP32"
    numpy: np.dtype[np.generic]  # np.float32; object for BYTES
    onnx: str  # ONNX Runtime's type string: "tensor(float)"
    triton: str  # Triton model config: "TYPE_FP32"
    itemsize: int  # bytes per element on the wire; 0 for BYTES (variable)


def _dt(name: str, numpy_type: type[np.generic] | str, onnx: str, triton: str) -> Datatype:
    dtype: np.dtype[np.generic] = np.dtype(numpy_type)
    itemsize = 0 if name == "BYTES" else dtype.itemsize
    return Datatype(name, dtype, onnx, triton, itemsize)


DATATYPES: tuple[Datatype, ...] = (
    _dt("BOOL", np.bool_, "tensor(bool)", "TYPE_BOOL"),
    _dt("UINT8", np.uint8, "tensor(uint8)", "TYPE_UINT8"),
    _dt("UINT16", np.uint16, "tensor(uint16)", "TYPE_UINT16"),
    _dt("UINT32", np.uint32, "tensor(uint32)", "TYPE_UINT32"),
    _dt("UINT64", np.uint64, "tensor(uint64)", "TYPE_UINT64"),
    _dt("INT8", np.int8, "tensor(int8)", "TYPE_INT8"),
    _dt("INT16", np.int16, "tensor(int16)", "TYPE_INT16"),
    _dt("INT32", np.int32, "tensor(int32)", "TYPE_INT32"),
    _dt("INT64", np.int64, "tensor(int64)", "TYPE_INT64"),
    _dt("FP16", np.float16, "tensor(float16)", "TYPE_FP16"),
    _dt("FP32", np.float32, "tensor(float)", "TYPE_FP32"),
    _dt("FP64", np.float64, "tensor(double)", "TYPE_FP64"),
    _dt("BYTES", np.object_, "tensor(string)", "TYPE_STRING"),
)

_BY_NAME = {d.name: d for d in DATATYPES}
_BY_ONNX = {d.onnx: d for d in DATATYPES}
_BY_NUMPY = {d.numpy: d for d in DATATYPES}
_LENGTH = struct.Struct("<I")


def by_name(name: str, *, tensor: str = "") -> Datatype:
    """The datatype called ``name`` on the wire; :class:`InvalidInput` naming the tensor if unknown."""
    try:
        return _BY_NAME[name]
    except KeyError:
        where = f" for tensor '{tensor}'" if tensor else ""
        known = ", ".join(_BY_NAME)
        raise InvalidInput(f"unknown datatype '{name}'{where}; expected one of {known}") from None


def by_onnx(onnx_type: str) -> Datatype:
    """The datatype of an ONNX Runtime type string such as ``tensor(float)``."""
    try:
        return _BY_ONNX[onnx_type]
    except KeyError:
        raise ValueError(f"ONNX type {onnx_type} has no Open Inference Protocol datatype") from None


def by_numpy(dtype: np.dtype[np.generic]) -> Datatype:
    """The datatype of a numpy dtype; ``bytes``/``str`` arrays map to BYTES."""
    if dtype.kind in "OSU":
        return _BY_NAME["BYTES"]
    try:
        return _BY_NUMPY[dtype]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no Open Inference Protocol datatype") from None


def encode_bytes_tensor(array: npt.NDArray[np.object_]) -> bytes:
    """Serialize a BYTES tensor: each element as a 4-byte little-endian length and its bytes, row-major."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        data = item.encode() if isinstance(item, str) else bytes(item)
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def decode_bytes_tensor(buffer: bytes | memoryview, count: int, *, tensor: str) -> npt.NDArray[np.object_]:
    """Parse ``count`` length-prefixed elements that must fill ``buffer`` exactly."""
    view = memoryview(buffer)
    items: list[bytes] = []
    offset = 0
    for index in range(count):
        if offset + 4 > len(view):
            raise InvalidInput(
                f"tensor '{tensor}': BYTES data ends after {index} of {count} elements "
                "(each element is a 4-byte little-endian length followed by its bytes)"
            )
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > len(view):
            raise InvalidInput(
                f"tensor '{tensor}': BYTES element {index} declares {length} bytes but only "
                f"{len(view) - offset} remain"
            )
        items.append(bytes(view[offset : offset + length]))
        offset += length
    if offset != len(view):
        raise InvalidInput(
            f"tensor '{tensor}': {len(view) - offset} unexpected bytes after {count} BYTES elements"
        )
    result = np.empty(count, dtype=np.object_)
    result[:] = items
    return result
