"""The model's inputs as its metadata states them, and the tensors one benchmark request sends.

Metadata shapes follow the Open Inference Protocol: ``-1`` is a dynamic dimension, and a leading ``-1`` is the
batch dimension of a model that batches (as Triton reports a ``max_batch_size`` > 0 model). Generated data
fills the batch dimension with ``--batch`` and any other dynamic dimension with 1; ``--data FILE.npz`` gives
the tensors as sent, one array per input name, checked against the signature before any load starts.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..datatypes import by_name
from ..errors import InvalidInput
from .errors import BenchError

__all__ = [
    "InputSpec",
    "Signature",
    "batch_of",
    "generated_tensors",
    "load_tensors",
    "parse_shapes",
    "signature_from_metadata",
]


@dataclass(frozen=True)
class InputSpec:
    """One input: its name, Open Inference Protocol datatype and metadata shape (``-1`` dynamic)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def batched(self) -> bool:
        return bool(self.shape) and self.shape[0] == -1


@dataclass(frozen=True)
class Signature:
    """What the model's metadata says: its name, versions, inputs and output names."""

    model: str
    versions: tuple[str, ...]
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]


def signature_from_metadata(metadata: Mapping[str, Any]) -> Signature:
    """The signature in a model metadata answer (``GET /v2/models/M`` JSON, or gRPC's in the same shape)."""
    try:
        inputs = tuple(
            InputSpec(str(i["name"]), str(i["datatype"]), tuple(int(d) for d in i["shape"]))
            for i in metadata["inputs"]
        )
        outputs = tuple(str(o["name"]) for o in metadata.get("outputs", []))
        return Signature(str(metadata["name"]), tuple(metadata.get("versions", [])), inputs, outputs)
    except (KeyError, TypeError, ValueError) as error:
        raise BenchError(f"the server's model metadata is not the protocol's shape ({error!r})") from None


def _numpy_type(spec: InputSpec) -> np.dtype[Any]:
    try:
        return by_name(spec.datatype, tensor=spec.name).numpy
    except InvalidInput as error:
        raise BenchError(str(error)) from None


def parse_shapes(values: Sequence[str], signature: Signature) -> dict[str, tuple[int, ...]]:
    """``--shape NAME:D1,D2`` (perf_analyzer's form): an input's dimensions after the batch dimension, for
    the dynamic ones the metadata leaves open; checked against the signature."""
    inputs = {spec.name: spec for spec in signature.inputs}
    shapes: dict[str, tuple[int, ...]] = {}
    for value in values:
        name, _, text = value.rpartition(":")
        spec = inputs.get(name)
        if spec is None:
            raise BenchError(f"--shape {value}: expected NAME:D1,D2 with NAME one of {sorted(inputs)}")
        try:
            dims = tuple(int(d) for d in text.split(","))
        except ValueError:
            raise BenchError(f"--shape {value}: the dimensions must be integers, e.g. {name}:3,224") from None
        wanted = spec.shape[1:] if spec.batched else spec.shape
        if len(dims) != len(wanted) or any(
            d < 1 or w not in (-1, d) for d, w in zip(dims, wanted, strict=True)
        ):
            raise BenchError(
                f"--shape {value}: '{name}' has shape {list(spec.shape)}; give its "
                f"{len(wanted)} dimension(s) after the batch, matching the fixed ones (-1: any size >= 1)"
            )
        shapes[name] = dims
    return shapes


def _request_shape(spec: InputSpec, batch: int, dims: tuple[int, ...] | None) -> tuple[int, ...]:
    if batch != 1 and not spec.batched:
        raise BenchError(
            f"input '{spec.name}' has shape {list(spec.shape)} with no batch dimension (-1 first): "
            "this model does not batch, so --batch must be 1"
        )
    rest = spec.shape[1:] if spec.batched else spec.shape
    shape = ([batch] if spec.batched else []) + list(dims if dims is not None else rest)
    return tuple(1 if d < 0 else d for d in shape)


def generated_tensors(
    signature: Signature,
    *,
    batch: int,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    seed: int = 0,
) -> dict[str, npt.NDArray[Any]]:
    """Random tensors of the signature's shapes (``shapes``: an input's dimensions after the batch, where
    given; other dynamic dimensions are 1): floats in [0, 1), integers in [0, 10), random booleans, BYTES as
    short ASCII strings (small integers keep embedding lookups and vocabularies in range)."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, npt.NDArray[Any]] = {}
    for spec in signature.inputs:
        dims = (shapes or {}).get(spec.name)
        dtype, shape = _numpy_type(spec), _request_shape(spec, batch, dims)
        if spec.datatype == "BYTES":
            values = [str(v).encode() for v in rng.integers(0, 10, size=int(np.prod(shape)))]
            tensors[spec.name] = np.array(values, dtype=np.object_).reshape(shape)
        elif spec.datatype == "BOOL":
            tensors[spec.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif np.issubdtype(dtype, np.floating):
            tensors[spec.name] = rng.random(shape).astype(dtype)
        else:
            tensors[spec.name] = rng.integers(0, 10, size=shape).astype(dtype)
    return tensors


def _fits(shape: Sequence[int], spec: InputSpec) -> bool:
    return len(shape) == len(spec.shape) and all(
        want in (-1, got) for got, want in zip(shape, spec.shape, strict=True)
    )


def load_tensors(path: Path, signature: Signature) -> dict[str, npt.NDArray[Any]]:
    """The arrays of ``path`` (``numpy.savez``), one per input, as sent: names, dtypes and shapes must match
    the signature, and every batched input must have the same first dimension."""
    if not path.is_file():
        raise BenchError(f"--data {path}: no such file (expected an .npz made by numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise BenchError(f"--data {path}: not a readable .npz file ({error})") from None
    wanted = {spec.name for spec in signature.inputs}
    if set(arrays) != wanted:
        raise BenchError(
            f"--data {path} holds arrays {sorted(arrays)} but model '{signature.model}' takes inputs "
            f"{sorted(wanted)}: save one array per input name"
        )
    batches = set()
    for spec in signature.inputs:
        array = arrays[spec.name]
        dtype = _numpy_type(spec)
        if spec.datatype == "BYTES":
            if array.dtype.kind not in "SU":
                raise BenchError(
                    f"--data {path}: '{spec.name}' is {array.dtype}, the model wants BYTES (strings)"
                )
            arrays[spec.name] = np.array(
                [v.encode() if isinstance(v, str) else bytes(v) for v in array.ravel().tolist()],
                dtype=np.object_,
            ).reshape(array.shape)
        elif array.dtype != dtype:
            raise BenchError(
                f"--data {path}: '{spec.name}' is {array.dtype}, the model wants {spec.datatype} ({dtype}): "
                f"save it with .astype(numpy.{dtype})"
            )
        if not _fits(array.shape, spec):
            raise BenchError(
                f"--data {path}: '{spec.name}' has shape {list(array.shape)}, the model wants "
                f"{list(spec.shape)} (-1: any size)"
            )
        if spec.batched:
            batches.add(array.shape[0])
    if len(batches) > 1:
        raise BenchError(f"--data {path}: the inputs' first (batch) dimensions differ: {sorted(batches)}")
    return arrays


def batch_of(tensors: Mapping[str, npt.NDArray[Any]], signature: Signature) -> int:
    """Rows per request: the first dimension of the batched inputs (1 for a model that does not batch)."""
    for spec in signature.inputs:
        if spec.batched:
            return int(tensors[spec.name].shape[0])
    return 1
