"""``tensorflow.TensorProto`` to and from numpy, without TensorFlow (a serving container has none).

Decoding follows TensorFlow's ``Tensor::FromProto`` (what ``tf.make_tensor_proto`` writes, TF Serving
reads): ``tensor_content`` holds the elements row-major and little-endian; otherwise the typed field of
the dtype (``float_val``, ``int_val`` for the small integers, ``half_val`` for float16 bit patterns,
``string_val``, ...) holds them, and fewer values than elements repeat the last one (one value fills the
tensor; none gives zeros). Every tensor is bounded by ``max_bytes`` before it is built. Encoding writes
``tensor_content`` (``string_val`` for strings), which ``tf.make_ndarray`` reads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from ..config_limits import MAX_RANK
from ..datatypes import by_name, by_numpy
from ..errors import InvalidInput, PayloadTooLarge
from .generated import tensorflow_tensor_pb2 as tf_pb
from .tfserving_types import TF_DATATYPES

__all__ = ["decode_tensor", "encode_tensor"]

_BY_TF = {number: name for name, (_, number) in TF_DATATYPES.items()}
# The typed field holding each datatype's values when tensor_content is empty.
_FIELD = {
    "FP32": "float_val",
    "FP64": "double_val",
    "INT32": "int_val",
    "INT16": "int_val",
    "INT8": "int_val",
    "UINT8": "int_val",
    "UINT16": "int_val",
    "INT64": "int64_val",
    "UINT32": "uint32_val",
    "UINT64": "uint64_val",
    "BOOL": "bool_val",
    "FP16": "half_val",
    "BYTES": "string_val",
}


def decode_tensor(name: str, tensor: tf_pb.TensorProto, *, max_bytes: int) -> npt.NDArray[Any]:
    """The numpy array ``tensor`` holds; :class:`InvalidInput` naming input ``name`` and what to fix."""
    datatype_name = _BY_TF.get(tensor.dtype)
    if datatype_name is None:
        known = ", ".join(tf for tf, _ in TF_DATATYPES.values())
        raise InvalidInput(f"input '{name}': dtype {tensor.dtype} is not supported here (supported: {known})")
    datatype = by_name(datatype_name)
    shape = _shape(name, tensor)
    count = math.prod(shape)
    if count * max(datatype.itemsize, 1) > max_bytes:
        raise PayloadTooLarge(
            f"input '{name}': shape {list(shape)} is {count} elements, more than the limit of {max_bytes} "
            "bytes"
        )
    if tensor.tensor_content and datatype_name != "BYTES":
        content = tensor.tensor_content
        if len(content) != count * datatype.itemsize:
            raise InvalidInput(
                f"input '{name}': tensor_content has {len(content)} bytes but shape {list(shape)} of "
                f"{TF_DATATYPES[datatype_name][0]} needs {count * datatype.itemsize}"
            )
        return np.frombuffer(content, dtype=datatype.numpy.newbyteorder("<")).reshape(shape)
    values: Any = getattr(tensor, _FIELD[datatype_name])
    if len(values) > count:
        raise InvalidInput(
            f"input '{name}': {_FIELD[datatype_name]} has {len(values)} values but shape {list(shape)} holds "
            f"{count}"
        )
    if datatype_name == "BYTES":
        items = list(values) + [values[-1] if values else b""] * (count - len(values))
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    if datatype_name == "FP16":
        flat = np.array(values, dtype=np.uint16).view(np.float16)
    else:
        flat = np.array(values, dtype=datatype.numpy)
    if len(flat) < count:
        fill = flat[-1] if len(flat) else np.zeros((), dtype=datatype.numpy)
        flat = np.concatenate([flat, np.full(count - len(flat), fill, dtype=datatype.numpy)])
    return flat.reshape(shape)


def _shape(name: str, tensor: tf_pb.TensorProto) -> tuple[int, ...]:
    if tensor.tensor_shape.unknown_rank:
        raise InvalidInput(f"input '{name}': tensor_shape has an unknown rank; give every dimension")
    dims = [dim.size for dim in tensor.tensor_shape.dim]
    if len(dims) > MAX_RANK:
        raise InvalidInput(f"input '{name}': {len(dims)} dimensions; at most {MAX_RANK} are allowed")
    if any(size < 0 for size in dims):
        raise InvalidInput(f"input '{name}': tensor_shape {dims} has a negative size; give the real sizes")
    return tuple(dims)


def encode_tensor(array: npt.NDArray[Any]) -> tf_pb.TensorProto:
    """``array`` as a TensorProto (``tensor_content``; ``string_val`` for a string tensor)."""
    datatype = by_numpy(array.dtype)
    tensor = tf_pb.TensorProto(dtype=TF_DATATYPES[datatype.name][1])  # type: ignore[arg-type]  # an enum number
    tensor.tensor_shape.dim.extend(tf_pb.TensorShapeProto.Dim(size=size) for size in array.shape)
    if datatype.name == "BYTES":
        tensor.string_val.extend(
            item.encode() if isinstance(item, str) else bytes(item) for item in array.reshape(-1).tolist()
        )
    else:
        tensor.tensor_content = np.ascontiguousarray(array, dtype=datatype.numpy.newbyteorder("<")).tobytes()
    return tensor
