"""Tensors on the wire <-> numpy arrays, shared by the REST and gRPC adapters.

Every function checks the declared shape *before* it allocates anything: rank at most :data:`MAX_RANK`
(Triton's cap), every dimension an integer in ``[0, 2**63)``, the element count within int64 (multiplied
with an early stop, so ``[2**62, 2**62, ...]`` costs nothing), the declared size within ``max_bytes``;
then the declared size against the bytes actually present. A request that declares ``[2**40, 8]`` is
refused in microseconds. Binary data is little-endian and row-major with no padding; a BYTES element is a
4-byte little-endian length followed by its bytes (Triton's binary tensor extension and gRPC
``raw_input_contents``).

Cost: a fixed-size binary tensor is a view of the body (no copy); a binary BYTES tensor costs its elements
(see :func:`datatypes.decode_bytes_tensor`: at most ~12x its wire size). Values (JSON ``data``, gRPC typed
contents) are converted a slice at a time, so a decoding thread hands the GIL back between slices. The
measured cost of each path is in ``docs/operations.md`` (``benchmarks/decode_memory.py``). Only
:class:`InvalidInput` / :class:`PayloadTooLarge` leave these functions, whatever the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..datatypes import Datatype, by_name, decode_bytes_tensor, encode_bytes_tensor
from ..errors import InvalidInput
from ..inference import Parameter, SharedMemoryInput
from ..shared_memory import SHARED_MEMORY_PARAMETERS, placement
from .large_requests import SLICE

__all__ = [
    "MAX_RANK",
    "MAX_TENSOR_NAME",
    "check_shape",
    "shared_memory_input",
    "tensor_from_buffer",
    "tensor_from_values",
    "tensor_to_bytes",
]

# A BYTES element takes at least its 4-byte length prefix on the wire.
_MIN_BYTES_ELEMENT = 4
MAX_RANK = 64  # Triton's limit; numpy's own is 64 too, so a larger rank could not become an array anyway
_INT64_MAX = 2**63 - 1
MAX_TENSOR_NAME = 256  # client-chosen names are echoed in errors: longer ones are refused by the codecs


def check_shape(name: str, datatype: Datatype, shape: Sequence[Any], *, max_bytes: int) -> int:
    """Return the element count of ``shape``; refuse bad shapes and a declared size above ``max_bytes``.

    Raises :class:`InvalidInput` naming the tensor for a rank above :data:`MAX_RANK`, a dimension that is not
    an integer in ``[0, 2**63)``, an element count beyond int64, and a shape whose data would exceed
    ``max_bytes`` (a declared shape that no request body can honour).
    """
    if len(shape) > MAX_RANK:
        raise InvalidInput(
            f"tensor '{name}': shape has {len(shape)} dimensions; at most {MAX_RANK} are allowed"
        )
    itemsize = datatype.itemsize or _MIN_BYTES_ELEMENT
    # The product of the non-zero dimensions: numpy refuses a shape whose product overflows even when another
    # dimension is 0 (an empty tensor of shape [0, 2**62, 4] is still "too big" to build).
    span = 1
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim <= _INT64_MAX:
            raise InvalidInput(
                f"tensor '{name}': shape {_shape_text(shape)} has the dimension {_dim_text(dim)}; "
                "every dimension must be a non-negative integer below 2**63"
            )
        if dim:
            span *= dim
            if span > _INT64_MAX:
                raise InvalidInput(
                    f"tensor '{name}': shape {_shape_text(shape)} has more than 2**63-1 elements"
                )
    if span * itemsize > _INT64_MAX:
        raise InvalidInput(f"tensor '{name}': shape {_shape_text(shape)} spans more than 2**63-1 bytes")
    count = 0 if 0 in shape else span
    if count * itemsize > max_bytes:
        raise InvalidInput(
            f"tensor '{name}': shape {_shape_text(shape)} of {datatype.name} declares at least "
            f"{count * itemsize} bytes, more than the limit of {max_bytes} bytes"
        )
    return count


def _dim_text(dim: Any) -> str:
    """A client's dimension for an error message, cut short: it may be a huge number or a long string."""
    if isinstance(dim, int) and not isinstance(dim, bool) and abs(dim) > _INT64_MAX:
        return "a number beyond 2**63-1"  # repr() of a 5,000-digit int raises ValueError
    text = repr(dim)
    return text if len(text) <= 24 else text[:21] + "..."


def _shape_text(shape: Sequence[Any]) -> str:
    """A client's shape for an error message: at most 8 dimensions shown."""
    shown = ", ".join(_dim_text(dim) for dim in shape[:8])
    return f"[{shown}{', ...' if len(shape) > 8 else ''}]"


def tensor_from_buffer(
    name: str, datatype: str, shape: Sequence[int], buffer: bytes | memoryview, *, max_bytes: int
) -> npt.NDArray[Any]:
    """Decode one tensor from its binary form; the byte count must match the shape exactly.

    The result may be a read-only view of ``buffer`` (no copy) for fixed-size datatypes.
    """
    dt = by_name(datatype, tensor=name)
    count = check_shape(name, dt, shape, max_bytes=max_bytes)
    if dt.itemsize == 0:
        return decode_bytes_tensor(buffer, count, tensor=name).reshape(tuple(shape))
    expected = count * dt.itemsize
    if len(buffer) != expected:
        raise InvalidInput(
            f"tensor '{name}': {datatype} shape {_shape_text(shape)} needs {expected} bytes, "
            f"got {len(buffer)}"
        )
    array = np.frombuffer(buffer, dtype=dt.numpy.newbyteorder("<"))
    if array.dtype != dt.numpy:  # only on a big-endian host
        array = array.astype(dt.numpy)
    return array.reshape(tuple(shape))


def tensor_from_values(
    name: str, datatype: str, shape: Sequence[int], values: Sequence[Any], *, max_bytes: int
) -> npt.NDArray[Any]:
    """Build one tensor from a flat or nested sequence of values (JSON ``data``, gRPC typed contents).

    The number of values must equal the element count of ``shape``. BYTES values may be ``str`` (encoded as
    UTF-8) or ``bytes``.
    """
    dt = by_name(datatype, tensor=name)
    count = check_shape(name, dt, shape, max_bytes=max_bytes)
    if len(values) > count and not isinstance(values[0], list | tuple):
        # A flat list can only fill `count` elements: refused before a single value is converted.
        raise InvalidInput(
            f"tensor '{name}': shape {_shape_text(shape)} needs {count} values, got {len(values)}"
        )
    try:
        # errstate: a value out of the datatype's range (1e308 as FP32) is refused, as an integer's is,
        # rather than stored as infinity with a warning.
        with np.errstate(over="raise", invalid="raise"):
            array = _bytes_array(values) if dt.itemsize == 0 else _number_array(values, dt.numpy)
    except FloatingPointError:
        raise InvalidInput(f"tensor '{name}': a value is outside the range of {datatype}") from None
    except (ValueError, TypeError, OverflowError) as error:
        raise InvalidInput(
            f"tensor '{name}': data is not a rectangular array of {datatype} values ({error})"
        ) from None
    if array.size != count:
        raise InvalidInput(
            f"tensor '{name}': shape {_shape_text(shape)} needs {count} values, got {array.size}"
        )
    return array.reshape(tuple(shape))


def _flat(values: Sequence[Any]) -> bool:
    return bool(values) and not isinstance(values[0], list | tuple)


def _number_array(values: Sequence[Any], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """Numbers as an array of ``dtype``. A long flat sequence (a JSON list, a protobuf repeated field) is
    converted :data:`SLICE` values per numpy call, each the call a short one would make: one call for
    millions of values holds the GIL for a quarter of a second (the decoding thread's event loop stalls)."""
    if len(values) <= SLICE or not _flat(values):
        return np.asarray(values, dtype=dtype)
    result = np.empty(len(values), dtype=dtype)
    for start in range(0, len(values), SLICE):
        result[start : start + SLICE] = np.asarray(values[start : start + SLICE], dtype=dtype)
    return result


def _bytes_array(values: Sequence[Any]) -> npt.NDArray[np.object_]:
    """BYTES values as an object array of ``bytes``, :data:`SLICE` elements per step: a slice of a protobuf
    repeated field is one C call, and elements that are ``bytes`` already (gRPC ``bytes_contents``) are
    taken as they are. A flat JSON list is converted in place (each ``str`` is freed as its ``bytes``
    replaces it), so the peak is the larger of the two, not their sum."""
    if not _flat(values):  # nested lists: flattened first (a ragged one leaves lists, refused as elements)
        values = np.array(values, dtype=np.object_).reshape(-1).tolist()
    result = np.empty(len(values), dtype=np.object_)
    for start in range(0, len(values), SLICE):
        items = values[start : start + SLICE]
        kinds = set(map(type, items))
        if kinds != {bytes}:
            items = [_as_bytes(item, start + index) for index, item in enumerate(items)]
            if isinstance(values, list):
                values[start : start + SLICE] = items
        result[start : start + len(items)] = items
    return result


def _as_bytes(item: Any, index: int) -> bytes:
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    raise TypeError(f"element {index} is {type(item).__name__}, expected a string")


def tensor_to_bytes(array: npt.NDArray[Any]) -> bytes:
    """Serialize ``array`` row-major little-endian; BYTES (object) arrays as length-prefixed elements."""
    if array.dtype.kind in "OSU":
        return encode_bytes_tensor(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.tobytes()


def shared_memory_input(
    name: str, datatype: str, shape: Sequence[Any], parameters: Mapping[str, Parameter]
) -> SharedMemoryInput | None:
    """The input ``name`` as placed in shared memory by its ``parameters``, or None when they place it
    nowhere (its data is in the request). The datatype and shape are checked here; the byte size against
    them, and the region, when the data plane reads it (:mod:`shared_memory.placement`)."""
    if SHARED_MEMORY_PARAMETERS.isdisjoint(parameters):
        return None
    place = placement(parameters, f"input '{name}'")
    if place is None:
        return None
    # No size limit but the region's: shared memory is how a tensor larger than a request body travels.
    check_shape(name, by_name(datatype, tensor=name), shape, max_bytes=_INT64_MAX)
    return SharedMemoryInput(datatype, tuple(shape), place.region, place.offset, place.byte_size)
