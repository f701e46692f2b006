"""Requests the server must refuse, written once for both protocols (REST and gRPC tests run every case).

A case is protocol-neutral: the tensors to send (as raw little-endian bytes, which REST sends through the
binary tensor extension and gRPC through ``raw_input_contents``, or as a list of values, which REST sends as
JSON ``data`` and gRPC as typed ``contents``), the expected error code, and a fragment of the message. The
models they address are in :data:`CASE_MODELS` (plus ``simple``: Triton's add/sub example, FP32 [-1, 3], and
the corrupt :data:`CORRUPT_MODEL`); the conftest writes them into the shared test repository.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from modelport.server.errors import ErrorCode

from tests.helpers.onnx_models import identity_model

__all__ = ["CASE_MODELS", "CORRUPT_MODEL", "REFUSALS", "RefusalCase", "WireTensor", "raw"]

# name -> (model, config.yaml or None). Tests address models only through these names.
CASE_MODELS: dict[str, tuple[onnx.ModelProto, dict[str, Any] | None]] = {
    "case_fp32": (identity_model("FP32", (-1, 4)), {"max_batch_size": 8}),
    # Also the execution-provider fallback case: neither TensorRT nor CUDA exists on a CPU-only build.
    "case_text": (identity_model("BYTES", (-1,)), {"execution_providers": ["tensorrt", "cuda", "cpu"]}),
}
CORRUPT_MODEL = "case_corrupt"  # the conftest writes a model.onnx that is not ONNX under this name


def raw(array: np.ndarray[Any, Any]) -> bytes:
    """Little-endian row-major bytes of a numeric array."""
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()


def _bytes_elements(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


@dataclass(frozen=True)
class WireTensor:
    """One input as the client declares it; exactly one of ``data`` (raw bytes) and ``values`` is set."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes | None = None
    values: Sequence[Any] | None = None


@dataclass(frozen=True)
class RefusalCase:
    """A request, the error code it must get, and a fragment its message must contain."""

    id: str
    model: str
    inputs: tuple[WireTensor, ...]
    code: ErrorCode
    message: str
    version: str = ""
    outputs: tuple[str, ...] | None = None


_ONES4 = raw(np.ones((1, 4), dtype=np.float32))
_GOOD = WireTensor("INPUT0", "FP32", (1, 4), _ONES4)
_FP3 = raw(np.ones((1, 3), dtype=np.float32))

REFUSALS: tuple[RefusalCase, ...] = (
    RefusalCase("unknown-model", "no_such_model", (_GOOD,), ErrorCode.INVALID_ARG, "unknown model"),
    RefusalCase(
        "unknown-version", "case_fp32", (_GOOD,), ErrorCode.INVALID_ARG, "version 9 is not found", version="9"
    ),
    RefusalCase(
        "non-numeric-version",
        "case_fp32",
        (_GOOD,),
        ErrorCode.INVALID_ARG,
        "not a version number",
        version="x",
    ),
    RefusalCase("model-not-ready", CORRUPT_MODEL, (_GOOD,), ErrorCode.UNAVAILABLE, "not a valid ONNX model"),
    RefusalCase(
        "missing-input",
        "case_fp32",
        (WireTensor("WRONG", "FP32", (1, 4), _ONES4),),
        ErrorCode.INVALID_ARG,
        "input 'INPUT0' is missing",
    ),
    RefusalCase(
        "unexpected-input",
        "case_fp32",
        (_GOOD, WireTensor("EXTRA", "FP32", (1, 4), _ONES4)),
        ErrorCode.INVALID_ARG,
        "has no input(s) EXTRA",
    ),
    RefusalCase(
        "wrong-datatype",
        "case_fp32",
        (WireTensor("INPUT0", "FP64", (1, 4), raw(np.ones((1, 4), dtype=np.float64))),),
        ErrorCode.INVALID_ARG,
        "input 'INPUT0' has datatype FP64, expected FP32",
    ),
    RefusalCase(
        "unknown-datatype",
        "case_fp32",
        (WireTensor("INPUT0", "FP8", (1, 4), b"\x00" * 4),),
        ErrorCode.INVALID_ARG,
        "unknown datatype 'FP8' for tensor 'INPUT0'",
    ),
    RefusalCase(
        "wrong-shape",
        "case_fp32",
        (WireTensor("INPUT0", "FP32", (1, 5), raw(np.ones((1, 5), dtype=np.float32))),),
        ErrorCode.INVALID_ARG,
        "input 'INPUT0' has shape [1, 5], expected [-1, 4]",
    ),
    RefusalCase(
        "wrong-rank",
        "case_fp32",
        (WireTensor("INPUT0", "FP32", (4,), raw(np.ones(4, dtype=np.float32))),),
        ErrorCode.INVALID_ARG,
        "input 'INPUT0' has shape [4], expected [-1, 4]",
    ),
    RefusalCase(
        "batch-too-large",
        "case_fp32",
        (WireTensor("INPUT0", "FP32", (9, 4), raw(np.ones((9, 4), dtype=np.float32))),),
        ErrorCode.INVALID_ARG,
        "max_batch_size 8",
    ),
    RefusalCase(
        "batch-sizes-differ",
        "simple",
        (
            WireTensor("INPUT0", "FP32", (1, 3), _FP3),
            WireTensor("INPUT1", "FP32", (2, 3), raw(np.ones((2, 3), dtype=np.float32))),
        ),
        ErrorCode.INVALID_ARG,
        "same first dimension",
    ),
    RefusalCase(
        "byte-count",
        "case_fp32",
        (WireTensor("INPUT0", "FP32", (1, 4), _ONES4[:12]),),
        ErrorCode.INVALID_ARG,
        "tensor 'INPUT0': FP32 shape [1, 4] needs 16 bytes, got 12",
    ),
    RefusalCase(
        "absurd-shape",
        "case_fp32",
        (WireTensor("INPUT0", "FP32", (2**40, 8), _ONES4),),
        ErrorCode.INVALID_ARG,
        "tensor 'INPUT0': shape [1099511627776, 8]",
    ),
    RefusalCase(
        "absurd-shape-values",
        "case_fp32",
        (WireTensor("INPUT0", "FP32", (2**40, 8), values=[1.0] * 4),),
        ErrorCode.INVALID_ARG,
        "tensor 'INPUT0': shape [1099511627776, 8]",
    ),
    RefusalCase(
        "negative-dim",
        "case_fp32",
        (WireTensor("INPUT0", "FP32", (-1, 4), _ONES4),),
        ErrorCode.INVALID_ARG,
        "non-negative",
    ),
    RefusalCase(
        "value-count",
        "case_fp32",
        (WireTensor("INPUT0", "FP32", (1, 4), values=[1.0, 2.0, 3.0]),),
        ErrorCode.INVALID_ARG,
        "tensor 'INPUT0': shape [1, 4] needs 4 values, got 3",
    ),
    RefusalCase(
        "bytes-length-prefix",
        "case_text",
        (WireTensor("INPUT0", "BYTES", (1,), struct.pack("<I", 50) + b"short"),),
        ErrorCode.INVALID_ARG,
        "BYTES element 0 declares 50 bytes",
    ),
    RefusalCase(
        "bytes-not-utf8",
        "case_text",
        (WireTensor("INPUT0", "BYTES", (1,), _bytes_elements(b"\xff\xfe")),),
        ErrorCode.INVALID_ARG,
        "UTF-8",
    ),
    RefusalCase(
        "unknown-output",
        "case_fp32",
        (_GOOD,),
        ErrorCode.INVALID_ARG,
        "has no output 'NOPE'",
        outputs=("NOPE",),
    ),
)
