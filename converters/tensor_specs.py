"""Tensor signatures: the ``--input NAME:DTYPE:DIMS`` syntax, and the datatype names of each layer.

A :class:`TensorSpec` holds the *full* shape, batch axis included; ``-1`` marks a dynamic dimension. Datatypes
are numpy names (``float32``); the model config spells them as Open Inference Protocol names (``FP32``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InvalidOption

__all__ = [
    "DYNAMIC",
    "TensorSpec",
    "check_unique",
    "normalise_dtype",
    "oip_datatype",
    "ort_dtype",
    "parse_input_spec",
]

DYNAMIC = -1

# numpy name -> Open Inference Protocol name (the server's config.yaml and wire datatypes).
_OIP_BY_NUMPY = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "object": "BYTES",
}
_NUMPY_BY_OIP = {oip: name for name, oip in _OIP_BY_NUMPY.items()}
_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "int": "int64", "long": "int64"}
# ONNX Runtime's element type names (``tensor(float)``) that are not numpy names.
_NUMPY_BY_ORT = {"float": "float32", "double": "float64", "string": "object"}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output: its name, numpy datatype name and full shape (``-1`` = dynamic)."""

    name: str
    dtype: str
    dims: tuple[int, ...]

    @property
    def batch_dynamic(self) -> bool:
        """Whether the first axis (the batch) is dynamic."""
        return bool(self.dims) and self.dims[0] == DYNAMIC

    def describe(self) -> str:
        """``name: float32[-1, 12]``, for tables and messages."""
        return f"{self.name}: {self.dtype}[{', '.join(str(d) for d in self.dims)}]"


def normalise_dtype(text: str) -> str:
    """The numpy datatype name for ``float32``, ``FP32``, ``float`` ...; :class:`InvalidOption` if unknown."""
    key = text.strip()
    if key.upper() in _NUMPY_BY_OIP:
        return _NUMPY_BY_OIP[key.upper()]
    key = _ALIASES.get(key.lower(), key.lower())
    if key in _OIP_BY_NUMPY:
        return key
    known = ", ".join(sorted(set(_OIP_BY_NUMPY) - {"object"}))
    raise InvalidOption(f"unknown datatype '{text}'; use one of {known} (or FP32, INT64 ...)")


def oip_datatype(dtype: str | np.dtype[np.generic]) -> str:
    """The Open Inference Protocol name of a numpy datatype (``float32`` -> ``FP32``)."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name.startswith(("str", "bytes")):
        name = "object"
    try:
        return _OIP_BY_NUMPY[name]
    except KeyError:
        raise InvalidOption(f"datatype '{name}' has no Open Inference Protocol equivalent") from None


def ort_dtype(type_name: str) -> str | None:
    """The numpy datatype name of an ONNX Runtime input/output type (``tensor(float)`` -> ``float32``);
    ``None`` for a type that is not a tensor of a datatype listed here (sequences, maps, bfloat16)."""
    if not (type_name.startswith("tensor(") and type_name.endswith(")")):
        return None
    element = type_name[len("tensor(") : -1]
    name = _NUMPY_BY_ORT.get(element, element)
    return name if name in _OIP_BY_NUMPY else None


def _parse_dims(text: str, spec: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
    dims: list[int] = []
    for part in parts:
        try:
            dim = int(part)
        except ValueError:
            raise InvalidOption(
                f"--input '{spec}': dimension '{part}' is not an integer; write e.g. features:float32:-1,12"
            ) from None
        if dim < DYNAMIC or dim == 0:
            raise InvalidOption(f"--input '{spec}': dimension {dim} must be positive or -1 (dynamic)")
        dims.append(dim)
    if not dims:
        raise InvalidOption(f"--input '{spec}': no dimensions; write e.g. features:float32:-1,12")
    return tuple(dims)


def parse_input_spec(spec: str) -> TensorSpec:
    """Parse ``NAME:DTYPE:DIMS`` (``features:float32:-1,12``; ``-1`` = dynamic, axis 0 = batch)."""
    parts = spec.split(":")
    if len(parts) != 3 or not parts[0]:
        raise InvalidOption(
            f"--input '{spec}' is not NAME:DTYPE:DIMS; write e.g. features:float32:-1,12 (-1 = dynamic)"
        )
    name, dtype, dims = parts
    try:
        numpy_dtype = normalise_dtype(dtype)
    except InvalidOption as error:
        raise InvalidOption(f"--input '{spec}': {error}") from None
    return TensorSpec(name=name.strip(), dtype=numpy_dtype, dims=_parse_dims(dims, spec))


def check_unique(specs: Sequence[TensorSpec]) -> None:
    """Refuse two ``--input`` options with the same name."""
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise InvalidOption(f"--input '{spec.name}' is given twice; give each input once")
        seen.add(spec.name)
