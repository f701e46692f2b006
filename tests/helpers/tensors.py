"""Test tensors shared by the REST and gRPC tests: a sample per datatype, the gRPC typed-contents field per
datatype (derived from the protocol's naming rule, not copied from the server's table), and the one-input
requests the logging and metrics tests send."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import yaml

from tests.helpers.onnx_models import ALL_DATATYPES

__all__ = [
    "TYPED_FIELD",
    "empty_elements",
    "grpc_ones",
    "grpc_zero_row",
    "http_ones",
    "mixed_elements",
    "sample",
    "typed_field",
]

_NUMPY: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def sample(datatype: str, rows: int) -> np.ndarray[Any, Any]:
    """``[rows, 4]`` values that exercise the type: extremes for integers, fractions for floats, text for
    BYTES."""
    if datatype == "BYTES":
        words = [b"", b"a", "\u00e9t\u00e9".encode(), b"x" * 300]
        flat = [words[i % 4] for i in range(rows * 4)]
        return np.array(flat, dtype=np.object_).reshape(rows, 4)
    dtype: np.dtype[Any] = np.dtype(_NUMPY[datatype])
    if datatype == "BOOL":
        flags: np.ndarray[Any, Any] = np.arange(rows * 4).reshape(rows, 4) % 3 == 0
        return flags
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        extremes = np.array([info.min, info.max, 0, 1], dtype=dtype)
        result: np.ndarray[Any, Any] = np.resize(extremes, rows * 4).reshape(rows, 4)
        return result
    return (np.arange(rows * 4).reshape(rows, 4) / 8 - 0.5).astype(dtype)


def typed_field(datatype: str) -> str | None:
    """The ``InferTensorContents`` field for ``datatype`` by the protocol's rule: 8-32-bit integers share
    ``int_contents``/``uint_contents``, 64-bit ones have their own, floats are named by width; FP16 has
    none."""
    if datatype == "FP16":
        return None
    kind = datatype.lower().rstrip("0123456789")  # bool, uint, int, fp, bytes
    bits = datatype[len(kind) :]
    if kind == "fp" or bits == "64":
        kind += bits
    return f"{kind}_contents"


TYPED_FIELD: dict[str, str] = {d: f for d in ALL_DATATYPES if (f := typed_field(d)) is not None}


def http_ones(rows: int, datatype: str = "FP32") -> list[httpclient.InferInput]:
    """``INPUT0`` ``[rows, 4]`` of ones (FP32 or INT32), for tritonclient.http."""
    tensor = httpclient.InferInput("INPUT0", [rows, 4], datatype)
    tensor.set_data_from_numpy(np.ones((rows, 4), dtype=np.float32 if datatype == "FP32" else np.int32))
    return [tensor]


def grpc_ones(rows: int, datatype: str = "FP32") -> list[grpcclient.InferInput]:
    """``INPUT0`` ``[rows, 4]`` of ones (FP32 or INT32), for tritonclient.grpc."""
    tensor = grpcclient.InferInput("INPUT0", [rows, 4], datatype)
    tensor.set_data_from_numpy(np.ones((rows, 4), dtype=np.float32 if datatype == "FP32" else np.int32))
    return [tensor]


def grpc_zero_row(model_folder: Path) -> list[grpcclient.InferInput]:
    """One row of zeros for each input ``model_folder/config.yaml`` declares, for tritonclient.grpc."""
    config = yaml.safe_load((model_folder / "config.yaml").read_text(encoding="utf-8"))
    inputs = []
    for spec in config["inputs"]:
        shape = [1, *spec["dims"]]
        tensor = grpcclient.InferInput(spec["name"], shape, spec["datatype"])
        tensor.set_data_from_numpy(np.zeros(shape, dtype=_NUMPY[spec["datatype"]]))
        inputs.append(tensor)
    return inputs


def empty_elements(size: int) -> tuple[int, bytes]:
    """The most BYTES elements ``size`` bytes of binary data can hold: every one empty (its 4-byte length
    only); the element count and the data."""
    count = size // 4
    return count, b"\x00\x00\x00\x00" * count


def mixed_elements(size: int) -> tuple[int, bytes]:
    """BYTES elements of 2 and 1 bytes, alternating, in at most ``size`` bytes (the decoder's walk of varying
    lengths, not its fast path for uniform ones); the element count and the data."""
    pair = struct.pack("<I", 2) + b"ab" + struct.pack("<I", 1) + b"c"
    pairs = size // len(pair)
    return 2 * pairs, pair * pairs
