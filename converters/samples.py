"""Input arrays for export examples and the parity check: generated from a signature or read from ``.npz``."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import CorruptSource, InvalidOption, SourceNotFound
from .exported import Arrays
from .tensor_specs import DYNAMIC, TensorSpec

__all__ = ["DEFAULT_INT_HIGH", "DYNAMIC_DIM_SIZE", "concrete_shape", "generate", "load_samples", "take_rows"]

# Size given to a dynamic non-batch dimension (sequence length, image side): divisible by 2, 4 and 8 so that
# pooling/upsampling autoencoders round-trip.
DYNAMIC_DIM_SIZE = 8
# Integer inputs that feed no embedding table get ids in [0, DEFAULT_INT_HIGH).
DEFAULT_INT_HIGH = 10


def concrete_shape(dims: Sequence[int], batch: int) -> tuple[int, ...]:
    """``dims`` with a dynamic batch set to ``batch`` and other dynamic dims to :data:`DYNAMIC_DIM_SIZE`."""
    shape = []
    for axis, dim in enumerate(dims):
        if dim == DYNAMIC:
            shape.append(batch if axis == 0 else DYNAMIC_DIM_SIZE)
        else:
            shape.append(dim)
    return tuple(shape)


def generate(
    specs: Sequence[TensorSpec], *, batch: int, rng: np.random.Generator, int_high: int = DEFAULT_INT_HIGH
) -> Arrays:
    """Arrays for ``specs``: standard-normal floats, integers in ``[0, int_high)``, random booleans."""
    arrays: Arrays = {}
    for spec in specs:
        shape = concrete_shape(spec.dims, batch)
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            arrays[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            arrays[spec.name] = rng.integers(0, max(int_high, 1), size=shape).astype(dtype)
        elif dtype.kind == "b":
            arrays[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise InvalidOption(
                f"cannot generate samples for input '{spec.name}' ({spec.dtype}); pass --samples"
            )
    return arrays


def load_samples(path: Path, specs: Sequence[TensorSpec]) -> Arrays:
    """The arrays of an ``.npz`` keyed by input name, cast to each input's datatype.

    Raises :class:`InvalidOption` naming the file when an input is missing or the row counts differ.
    """
    if not path.is_file():
        raise SourceNotFound(f"{path}: samples file not found; pass an .npz with one array per input name")
    try:
        with np.load(path, allow_pickle=False) as archive:
            loaded = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise CorruptSource(f"{path}: not a readable .npz ({error}); write it with numpy.savez") from None
    arrays: Arrays = {}
    for spec in specs:
        if spec.name not in loaded:
            have = ", ".join(sorted(loaded)) or "none"
            raise InvalidOption(f"{path}: no array named '{spec.name}' (the model's input); it has: {have}")
        array = loaded[spec.name]
        if array.ndim != len(spec.dims):
            raise InvalidOption(
                f"{path}: array '{spec.name}' has {array.ndim} dimensions, the input {spec.describe()} has "
                f"{len(spec.dims)}; include the batch axis"
            )
        arrays[spec.name] = array.astype(spec.dtype, copy=False)
    rows = {array.shape[0] for array in arrays.values()}
    if len(rows) > 1:
        raise InvalidOption(
            f"{path}: arrays have different row counts {sorted(rows)}; give each input N rows"
        )
    return arrays


def take_rows(arrays: Arrays, rows: int) -> Arrays:
    """The first ``rows`` rows of every array."""
    return {name: array[:rows] for name, array in arrays.items()}
