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
_MAX_ELEMENT = 2**32 - 1
# Elements built per C call when slicing uniform BYTES data: ~2 ms of GIL each.
_SLICE = 1 << 16


def by_name(name: str, *, tensor: str = "") -> Datatype:
    """The datatype called ``name`` on the wire; :class:`InvalidInput` naming the tensor if unknown."""
    try:
        return _BY_NAME[name]
    except KeyError:
        where = f" for tensor '{tensor}'" if tensor else ""
        known = ", ".join(_BY_NAME)
        shown = name if len(name) <= 32 else name[:29] + "..."  # the client's text, echoed bounded
        raise InvalidInput(f"unknown datatype {shown!r}{where}; expected one of {known}") from None


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
    """Serialize a BYTES tensor: each element as a 4-byte little-endian length and its bytes, row-major.

    ``str`` elements are encoded as UTF-8. Vectorised: one join of the elements and the length prefixes
    written by numpy (a record array when every element has one length, else a scatter), so the cost is a few
    passes over the bytes and ~50 bytes of index per element, not two Python objects per element.
    """
    items = array.reshape(-1).tolist()
    if not all(type(item) is bytes for item in items):
        items = [item.encode() if isinstance(item, str) else bytes(item) for item in items]
    if not items:
        return b""
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    longest = int(lengths.max())
    if longest > _MAX_ELEMENT:
        raise InvalidInput(f"a BYTES element of {longest} bytes does not fit a 4-byte length")
    joined = b"".join(items)
    del items
    if longest and int(lengths.min()) == longest:
        records = np.empty(lengths.size, dtype=np.dtype([("n", "<u4"), ("v", f"V{longest}")]))
        records["n"] = longest
        records["v"] = np.frombuffer(joined, dtype=f"V{longest}")
        return records.tobytes()
    out = np.empty(4 * lengths.size + len(joined), dtype=np.uint8)
    # Element i's prefix starts after i prefixes and the data of the elements before it.
    starts = np.arange(lengths.size, dtype=np.int64) * 4
    starts[1:] += np.cumsum(lengths[:-1])
    prefix_at = (starts[:, None] + np.arange(4, dtype=np.int64)).reshape(-1)
    out[prefix_at] = lengths.astype("<u4").view(np.uint8)
    is_data = np.ones(out.size, dtype=np.bool_)
    is_data[prefix_at] = False
    out[is_data] = np.frombuffer(joined, dtype=np.uint8)
    return out.tobytes()


def decode_bytes_tensor(buffer: bytes | memoryview, count: int, *, tensor: str) -> npt.NDArray[np.object_]:
    """Parse ``count`` length-prefixed elements that must fill ``buffer`` exactly.

    Refuses, before allocating anything, a ``count`` that ``buffer`` cannot hold (each element takes at least
    its 4-byte prefix). Memory: the result's elements (one ``bytes`` each, ~33 bytes + its length, empty and
    one-byte elements shared) and an 8-byte slot per element, at most ~12x ``len(buffer)``. Elements are
    built in slices of :data:`_SLICE` so a decoding thread hands the GIL back between slices.
    """
    view = memoryview(buffer).cast("B") if isinstance(buffer, memoryview) else memoryview(buffer)
    size = len(view)
    if count * 4 > size:
        raise InvalidInput(
            f"tensor '{tensor}': {count} BYTES elements need at least {count * 4} bytes "
            f"(a 4-byte length each), got {size}"
        )
    result = np.empty(count, dtype=np.object_)
    if count == 0:
        if size:
            raise InvalidInput(f"tensor '{tensor}': {size} unexpected bytes after 0 BYTES elements")
        return result
    (first,) = _LENGTH.unpack_from(view, 0)
    if first and count * (4 + first) == size and _uniform(view, count, first, result):
        return result
    _walk(view, count, tensor, result)
    return result


def _uniform(view: memoryview, count: int, length: int, result: npt.NDArray[np.object_]) -> bool:
    """The common case, every element ``length`` bytes: checked and sliced by numpy, no Python loop."""
    records = np.frombuffer(view, dtype=np.dtype([("n", "<u4"), ("v", f"V{length}")]), count=count)
    if not bool((records["n"] == length).all()):
        return False
    values = records["v"]
    for start in range(0, count, _SLICE):
        result[start : start + _SLICE] = values[start : start + _SLICE].tolist()
    return True


def _walk(view: memoryview, count: int, tensor: str, result: npt.NDArray[np.object_]) -> None:
    """Elements of any lengths: one pass, each element a single slice of ``data``."""
    data = view.obj if isinstance(view.obj, bytes) and len(view.obj) == len(view) else bytes(view)
    size = len(data)
    unpack = _LENGTH.unpack_from
    offset = 0
    for index in range(count):
        if offset + 4 > size:
            raise InvalidInput(
                f"tensor '{tensor}': BYTES data ends after {index} of {count} elements "
                "(each element is a 4-byte little-endian length followed by its bytes)"
            )
        (length,) = unpack(data, offset)
        offset += 4
        end = offset + length
        if end > size:
            raise InvalidInput(
                f"tensor '{tensor}': BYTES element {index} declares {length} bytes but only "
                f"{size - offset} remain"
            )
        result[index] = data[offset:end]
        offset = end
    if offset != size:
        raise InvalidInput(
            f"tensor '{tensor}': {size - offset} unexpected bytes after {count} BYTES elements"
        )
