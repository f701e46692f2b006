"""Tensors on the wire <-> numpy arrays, shared by the REST and gRPC adapters.

Every function checks the declared shape against ``max_bytes`` *before* it allocates anything, so a request
that declares ``[2**40, 8]`` is refused in microseconds. Binary data is little-endian and row-major with no
padding; a BYTES element is a 4-byte little-endian length followed by its bytes (Triton's binary tensor
extension and gRPC ``raw_input_contents``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..datatypes import Datatype, by_name, decode_bytes_tensor, encode_bytes_tensor
from ..errors import InvalidInput

__all__ = ["check_shape", "tensor_from_buffer", "tensor_from_values", "tensor_to_bytes"]

# A BYTES element takes at least its 4-byte length prefix on the wire.
_MIN_BYTES_ELEMENT = 4


def check_shape(name: str, datatype: Datatype, shape: Sequence[int], *, max_bytes: int) -> int:
    """Return the element count of ``shape``; refuse bad dims and a declared size above ``max_bytes``.

    Raises :class:`InvalidInput` naming the tensor for a dimension that is not a non-negative integer, and for
    a shape whose data would exceed ``max_bytes`` (a declared shape that no request body can honour).
    """
    count = 1
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise InvalidInput(
                f"tensor '{name}': shape {list(shape)} has the dimension {dim!r}; "
                "every dimension must be a non-negative integer"
            )
        count *= dim
    itemsize = datatype.itemsize or _MIN_BYTES_ELEMENT
    if count * itemsize > max_bytes:
        raise InvalidInput(
            f"tensor '{name}': shape {list(shape)} of {datatype.name} declares at least {count * itemsize} "
            f"bytes, more than the limit of {max_bytes} bytes"
        )
    return count


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
            f"tensor '{name}': {datatype} shape {list(shape)} needs {expected} bytes, got {len(buffer)}"
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
    try:
        array = _bytes_array(values) if dt.itemsize == 0 else np.asarray(values, dtype=dt.numpy)
    except (ValueError, TypeError, OverflowError) as error:
        raise InvalidInput(
            f"tensor '{name}': data is not a rectangular array of {datatype} values ({error})"
        ) from None
    if array.size != count:
        raise InvalidInput(f"tensor '{name}': shape {list(shape)} needs {count} values, got {array.size}")
    return array.reshape(tuple(shape))


def _bytes_array(values: Sequence[Any]) -> npt.NDArray[np.object_]:
    nested = np.array(values, dtype=np.object_)
    flat = nested.reshape(-1)
    result = np.empty(flat.size, dtype=np.object_)
    for index, item in enumerate(flat):
        if isinstance(item, str):
            result[index] = item.encode()
        elif isinstance(item, bytes | bytearray | memoryview):
            result[index] = bytes(item)
        else:
            raise TypeError(f"element {index} is {type(item).__name__}, expected a string")
    return result


def tensor_to_bytes(array: npt.NDArray[Any]) -> bytes:
    """Serialize ``array`` row-major little-endian; BYTES (object) arrays as length-prefixed elements."""
    if array.dtype.kind in "OSU":
        return encode_bytes_tensor(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.tobytes()
