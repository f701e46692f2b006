"""Input samples for the parity check and for quantization: read from an ``.npz`` or generated, one layout.

An ``.npz`` holds one array per model input, keyed by the input's name, samples on axis 0. Arrays are checked
against the model's signature (:class:`~.tensor_specs.TensorSpec`, ``-1`` = dynamic) before anything runs,
and every complaint names the file and the key. The parity check feeds rows as batches; quantization also
accepts arrays with one more leading axis than the input (each sample then is fed alone), which a model
without a dynamic batch axis needs.

Generated samples are seeded, so a run can be repeated: floats standard-normal (the parity check) or uniform
in [0, 1) (calibration), integers below a bound (an embedding table's row count where the graph shows one),
random booleans; a dynamic non-batch dimension gets :data:`DYNAMIC_DIM_SIZE`.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .errors import CorruptSource, InvalidSamples, SourceNotFound
from .tensor_specs import DYNAMIC, TensorSpec

__all__ = [
    "DEFAULT_INT_HIGH",
    "DYNAMIC_DIM_SIZE",
    "KEPT_SAMPLES_FILE",
    "KEPT_SAMPLES_MAX_BYTES",
    "Array",
    "FloatDraw",
    "SampleSet",
    "concrete_shape",
    "generate",
    "kept_samples",
    "load_npz",
]

# Size given to a dynamic non-batch dimension (sequence length, image side): divisible by 2, 4 and 8 so that
# pooling/upsampling autoencoders round-trip.
DYNAMIC_DIM_SIZE = 8
# Integer inputs that feed no embedding table get ids in [0, DEFAULT_INT_HIGH).
DEFAULT_INT_HIGH = 10

# A conversion keeps (the first rows of) its verification samples beside the model, for quantize and
# export-mobile to calibrate and judge on real data; bounded so that a large --samples file stays out of it.
KEPT_SAMPLES_FILE = "samples.npz"
KEPT_SAMPLES_MAX_BYTES = 1 << 20

FloatDraw = Literal["normal", "uniform"]
Array = npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class SampleSet:
    """Named arrays with the same number of samples on axis 0; ``stacked`` means each sample is fed alone
    (it carries the model's own batch axis, or the model has none). ``source`` says where they came from,
    for the reports; ``generated`` that they are random draws, not data."""

    arrays: Mapping[str, Array]
    source: str
    stacked: bool = False
    generated: bool = False

    @property
    def count(self) -> int:
        """The number of samples (the length of axis 0)."""
        return len(next(iter(self.arrays.values())))

    def take(self, start: int, stop: int, source: str) -> SampleSet:
        """Samples ``start`` to ``stop`` (exclusive), described as ``source``."""
        return SampleSet(
            {k: v[start:stop] for k, v in self.arrays.items()}, source, self.stacked, self.generated
        )

    def split(self, held_out_fraction: float) -> tuple[SampleSet, SampleSet]:
        """(calibration, validation): the last ``held_out_fraction`` of the samples are held out; with fewer
        than two samples both parts are the whole set."""
        if self.count < 2:
            return self, self
        held = min(self.count - 1, max(1, round(self.count * held_out_fraction)))
        cut = self.count - held
        return (
            self.take(0, cut, f"{self.source}, samples 0-{cut - 1}"),
            self.take(cut, self.count, f"{self.source}, held-out samples {cut}-{self.count - 1}"),
        )

    def batches(self, batch_size: int) -> Iterator[dict[str, Array]]:
        """Feeds for a session: ``batch_size`` samples at a time (one at a time when ``stacked``)."""
        step = 1 if self.stacked else max(1, batch_size)
        for start in range(0, self.count, step):
            if self.stacked:
                yield {k: v[start] for k, v in self.arrays.items()}
            else:
                yield {k: v[start : start + step] for k, v in self.arrays.items()}


def concrete_shape(dims: Sequence[int], batch: int) -> tuple[int, ...]:
    """``dims`` with a dynamic batch set to ``batch`` and other dynamic dims to :data:`DYNAMIC_DIM_SIZE`."""
    return tuple(
        (batch if axis == 0 else DYNAMIC_DIM_SIZE) if dim == DYNAMIC else dim for axis, dim in enumerate(dims)
    )


def generate(
    specs: Sequence[TensorSpec],
    *,
    batch: int,
    rng: np.random.Generator,
    int_high: int | Mapping[str, int] = DEFAULT_INT_HIGH,
    floats: FloatDraw = "normal",
    stack: int | None = None,
) -> dict[str, Array]:
    """Arrays for ``specs`` with a dynamic batch of ``batch`` rows; with ``stack``, that many such arrays
    stacked on a new leading axis (samples fed one at a time).

    Integers are drawn from ``[0, int_high)`` (per input name when a mapping: inputs it lacks get
    :data:`DEFAULT_INT_HIGH`). Raises :class:`InvalidSamples` for a datatype it cannot draw (strings).
    """
    arrays: dict[str, Array] = {}
    for spec in specs:
        shape = concrete_shape(spec.dims, batch)
        if stack is not None:
            shape = (stack, *shape)
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            drawn = rng.standard_normal(shape) if floats == "normal" else rng.random(shape)
            arrays[spec.name] = drawn.astype(dtype)
        elif dtype.kind in "iu":
            high = int_high if isinstance(int_high, int) else int_high.get(spec.name, DEFAULT_INT_HIGH)
            arrays[spec.name] = rng.integers(0, max(high, 1), size=shape).astype(dtype)
        elif dtype.kind == "b":
            arrays[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise InvalidSamples(
                f"cannot generate samples for input '{spec.name}' ({spec.dtype}); pass a samples .npz"
            )
    return arrays


def _shape_text(spec: TensorSpec) -> str:
    return "[" + ", ".join("?" if d == DYNAMIC else str(d) for d in spec.dims) + "]"


def _conform(path: Path, spec: TensorSpec, array: Array, *, per_sample: bool) -> tuple[Array, bool]:
    """``array`` checked against ``spec`` and cast to its datatype; whether it is stacked (fed singly)."""
    where = f"{path}: array '{spec.name}'"
    want = np.dtype(spec.dtype)
    if array.dtype.kind != want.kind and not (array.dtype.kind in "iu" and want.kind in "iu"):
        raise InvalidSamples(f"{where} has dtype {array.dtype}; the model's input is {spec.dtype}")
    rank = len(spec.dims)
    if array.ndim == rank:
        stacked, per_row, fixed = False, array.shape[1:], spec.dims[1:]
    elif per_sample and array.ndim == rank + 1:
        stacked, per_row, fixed = True, array.shape[1:], spec.dims
    else:
        raise InvalidSamples(
            f"{where} has shape {list(array.shape)}; the model's input {spec.name} has rank {rank} "
            f"{_shape_text(spec)}; give samples on axis 0 (include the batch axis)"
        )
    for axis, (have, wanted) in enumerate(zip(per_row, fixed, strict=True), start=1):
        if wanted not in (DYNAMIC, have):
            raise InvalidSamples(
                f"{where} has size {have} on axis {axis}; the model's input needs {_shape_text(spec)}"
            )
    batch = spec.dims[0] if spec.dims else DYNAMIC
    if per_sample and not stacked and batch not in (DYNAMIC, 1):
        raise InvalidSamples(f"{where}: the model's batch size is fixed at {batch}; give one sample per row")
    if per_sample and not stacked and batch == 1:
        array = array[:, None]  # batch fixed at 1: each row is fed alone, with its own batch axis
        stacked = True
    return array.astype(want, copy=False), stacked


def load_npz(path: Path, specs: Sequence[TensorSpec], *, per_sample: bool = False) -> SampleSet:
    """Read and check an ``.npz`` against the model's inputs.

    Without ``per_sample`` (the parity check) each array's axis 0 is the model's batch axis. With it
    (quantization) an array may also carry one more leading axis than the input, or give rows of a model whose
    batch is fixed at 1: those samples are fed one at a time (``stacked``). Raises :class:`SourceNotFound`,
    :class:`CorruptSource` or :class:`InvalidSamples`, each naming the file (and the key).
    """
    if not path.is_file():
        raise SourceNotFound(
            f"{path}: no such samples file; pass an .npz with one array per model input, keyed by its name"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            loaded = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise CorruptSource(
            f"{path}: not a readable .npz archive ({error}); write it with numpy.savez"
        ) from None
    missing = [spec.name for spec in specs if spec.name not in loaded]
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        have = ", ".join(sorted(loaded)) or "none"
        raise InvalidSamples(
            f"{path}: no array named {names} (the model's input); the file has: {have}. Save one array "
            "per input, keyed by the input's name: np.savez(PATH, **{name: samples})"
        )
    arrays: dict[str, Array] = {}
    layouts = set()
    for spec in specs:
        arrays[spec.name], stacked = _conform(path, spec, loaded[spec.name], per_sample=per_sample)
        layouts.add(stacked)
    counts = {name: len(array) for name, array in arrays.items()}
    if len(set(counts.values())) > 1:
        raise InvalidSamples(f"{path}: the arrays hold different numbers of samples on axis 0: {counts}")
    if len(layouts) > 1:
        raise InvalidSamples(
            f"{path}: some arrays carry a batch axis and some do not; give all the same layout"
        )
    if not counts or next(iter(counts.values())) == 0:
        raise InvalidSamples(f"{path}: the arrays hold no samples")
    return SampleSet(arrays, str(path), layouts.pop())


def kept_samples(
    path: Path, specs: Sequence[TensorSpec], *, limit: int = KEPT_SAMPLES_MAX_BYTES
) -> tuple[bytes, int]:
    """The ``.npz`` a conversion keeps from its samples file: its first rows, as many as fit in ``limit``
    bytes uncompressed (at least one), compressed; returns the file's bytes and the rows kept."""
    samples = load_npz(path, specs)
    row_bytes = sum(array[:1].nbytes for array in samples.arrays.values())
    rows = max(1, min(samples.count, limit // max(row_bytes, 1)))
    buffer = io.BytesIO()
    kept = {name: array[:rows] for name, array in samples.arrays.items()}
    np.savez_compressed(buffer, **kept)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return buffer.getvalue(), rows
