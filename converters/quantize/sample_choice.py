"""Calibration and validation samples for quantization: read from an ``.npz`` or generated, split, batched.

An ``.npz`` holds one array per model input, keyed by the input's name, samples on axis 0 (arrays may carry
one more leading axis than the input when the model's own shape has no batch axis). Arrays are checked against
the model's signature before anything runs, and every complaint names the file and the key.

Generated samples are a last resort (real data calibrates far better): floats uniform in [0, 1), integers in
[0, rows) when the input indexes an embedding table (a ``Gather`` on an initializer), else {0, 1}; dynamic
non-batch dimensions get :data:`GENERATED_DYNAMIC_DIM`. They are seeded, so a run can be repeated.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .errors import QuantizeError

if TYPE_CHECKING:
    import onnx

__all__ = [
    "DEFAULT_VALIDATION_SAMPLES",
    "GENERATED_DYNAMIC_DIM",
    "HELD_OUT_FRACTION",
    "DataError",
    "InputSpec",
    "SampleSet",
    "cast_feed",
    "generate_samples",
    "load_npz",
    "model_inputs",
    "select_samples",
]

GENERATED_DYNAMIC_DIM = 8
DEFAULT_VALIDATION_SAMPLES = 64  # generated for the gate when no data is given (dynamic, float16)
HELD_OUT_FRACTION = 0.2  # of the calibration samples, kept back for the gate when no validation file is given
_ORT_TYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}

Array = npt.NDArray[Any]


class DataError(QuantizeError):
    """Calibration or validation data that does not fit the model; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One model input: name, numpy dtype, shape (``None`` = dynamic), and the exclusive upper bound of the
    integer values it accepts when the graph reveals one (an embedding table's row count)."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int | None, ...]
    int_bound: int | None = None


@dataclass(frozen=True, slots=True)
class SampleSet:
    """Named arrays with the same number of samples on axis 0; ``stacked`` means each sample is fed alone
    (the model's input has no batch axis). ``source`` says where they came from, for the report."""

    arrays: Mapping[str, Array]
    source: str
    stacked: bool = False

    @property
    def count(self) -> int:
        return len(next(iter(self.arrays.values())))

    def take(self, start: int, stop: int, source: str) -> SampleSet:
        return SampleSet({k: v[start:stop] for k, v in self.arrays.items()}, source, self.stacked)

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


def _int_bounds(model: onnx.ModelProto) -> dict[str, int]:
    initializers = {t.name: list(t.dims) for t in model.graph.initializer}
    bounds: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[0] in initializers:
            dims = initializers[node.input[0]]
            if dims:
                bounds[node.input[1]] = dims[0]
    return bounds


def model_inputs(model_path: Path, model: onnx.ModelProto) -> list[InputSpec]:
    """The inputs a session of ``model_path`` expects (initializers excluded), with integer bounds."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    bounds = _int_bounds(model)
    specs = []
    for arg in session.get_inputs():
        if arg.type not in _ORT_TYPES:
            raise DataError(f"input '{arg.name}' has type {arg.type}, which quantization does not support")
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
        specs.append(InputSpec(arg.name, np.dtype(_ORT_TYPES[arg.type]), shape, bounds.get(arg.name)))
    return specs


def cast_feed(session: Any, feed: Mapping[str, Array]) -> dict[str, Array]:
    """``feed`` cast to the input types of ``session`` (an onnxruntime InferenceSession): a converted model
    may take FP16 where the samples, made for the FP32 model, are FP32."""
    wanted = {arg.name: _ORT_TYPES.get(arg.type) for arg in session.get_inputs()}
    return {k: v if wanted.get(k) is None else v.astype(wanted[k], copy=False) for k, v in feed.items()}


def _conform(path: Path, spec: InputSpec, array: Array) -> tuple[Array, bool]:
    where = f"{path}: array '{spec.name}'"
    if array.dtype.kind != spec.dtype.kind and not (array.dtype.kind in "iu" and spec.dtype.kind in "iu"):
        raise DataError(f"{where} has dtype {array.dtype}; the model's input is {spec.dtype}")
    rank = len(spec.shape)
    if array.ndim == rank:
        stacked, per_sample, fixed = False, array.shape[1:], spec.shape[1:]
    elif array.ndim == rank + 1:
        stacked, per_sample, fixed = True, array.shape[1:], spec.shape
    else:
        raise DataError(
            f"{where} has shape {list(array.shape)}; the model's input has rank {rank} "
            f"({['?' if d is None else d for d in spec.shape]}), samples on axis 0"
        )
    for axis, (have, want) in enumerate(zip(per_sample, fixed, strict=True), start=1):
        if want is not None and have != want:
            raise DataError(
                f"{where} has size {have} on axis {axis}; the model's input needs "
                f"{['?' if d is None else d for d in spec.shape]}"
            )
    if not stacked and spec.shape[0] is not None and spec.shape[0] != 1:
        raise DataError(
            f"{where}: the model's batch size is fixed at {spec.shape[0]}; give one sample per row"
        )
    if not stacked and spec.shape[0] == 1:
        array = array[:, None]  # batch fixed at 1: each row is fed alone, with its own batch axis
        stacked = True
    return array.astype(spec.dtype, copy=False), stacked


def load_npz(path: Path, specs: list[InputSpec]) -> SampleSet:
    """Read and check an ``.npz`` against the model's inputs; :class:`DataError` names what is wrong."""
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError as error:
        raise DataError(f"{path}: no such file") from error
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable .npz archive ({error})") from error
    with archive:
        keys = list(archive.files)
        missing = [s.name for s in specs if s.name not in keys]
        if missing:
            raise DataError(
                f"{path}: no array for model input(s) {missing}; the file has {keys}. "
                "Save one array per input, keyed by the input's name: np.savez(PATH, **{name: samples})"
            )
        arrays: dict[str, Array] = {}
        stacked_flags = set()
        for spec in specs:
            arrays[spec.name], stacked = _conform(path, spec, archive[spec.name])
            stacked_flags.add(stacked)
    counts = {name: len(a) for name, a in arrays.items()}
    if len(set(counts.values())) != 1:
        raise DataError(f"{path}: the arrays hold different numbers of samples on axis 0: {counts}")
    if len(stacked_flags) != 1:
        raise DataError(f"{path}: some arrays carry a batch axis and some do not; give all the same layout")
    if next(iter(counts.values())) == 0:
        raise DataError(f"{path}: the arrays hold no samples")
    return SampleSet(arrays, str(path), stacked_flags.pop())


def generate_samples(specs: list[InputSpec], count: int, *, seed: int, purpose: str) -> SampleSet:
    """``count`` seeded random samples for ``specs`` (see the module docstring for the distributions)."""
    rng = np.random.default_rng(seed)
    # A model whose batch size is fixed gets each sample alone, with that batch size.
    fixed_batch = any(s.shape and s.shape[0] is not None for s in specs)
    arrays: dict[str, Array] = {}
    for spec in specs:
        dims = [GENERATED_DYNAMIC_DIM if d is None else d for d in spec.shape[1:]]
        shape = (count, spec.shape[0] or 1, *dims) if fixed_batch else (count, *dims)
        if spec.dtype.kind == "f":
            arrays[spec.name] = rng.random(shape).astype(spec.dtype)
        elif spec.dtype.kind == "b":
            arrays[spec.name] = rng.random(shape) < 0.5
        else:
            arrays[spec.name] = rng.integers(0, spec.int_bound or 2, shape).astype(spec.dtype)
    return SampleSet(arrays, f"{count} generated samples ({purpose}, seed {seed})", stacked=fixed_batch)


def select_samples(
    specs: list[InputSpec],
    *,
    needs_calibration: bool,
    calibration: Path | None,
    calibration_samples: int | None,
    validation: Path | None,
    seed: int,
) -> tuple[SampleSet | None, SampleSet]:
    """(calibration samples, or None when not needed; validation samples for the gate).

    ``calibration``: an ``.npz``; ``calibration_samples``: use that many of it, or generate that many
    without it. ``validation``: a separate ``.npz``; without it the gate uses the last
    :data:`HELD_OUT_FRACTION` of the calibration file (static), a fresh generated draw (static, generated),
    or the whole calibration data or :data:`DEFAULT_VALIDATION_SAMPLES` generated ones (modes that need no
    calibration).
    """
    count = calibration_samples
    if count is not None and count < 1:
        raise DataError(f"--calibration-samples must be at least 1, not {count}")
    given: SampleSet | None = None
    if calibration is not None:
        given = load_npz(calibration, specs)
        if count is not None:
            given = given.take(0, count, f"{calibration}, first {min(count, given.count)} samples")
    elif count is not None:
        given = generate_samples(specs, count, seed=seed, purpose="calibration")
    held_out = load_npz(validation, specs) if validation is not None else None

    if not needs_calibration:
        if held_out is None:
            held_out = given or generate_samples(
                specs, DEFAULT_VALIDATION_SAMPLES, seed=seed, purpose="validation"
            )
        return None, held_out
    if given is None:
        raise DataError(
            "static quantization needs calibration data: pass --calibration FILE.npz (one array per model "
            "input, keyed by its name, samples on axis 0) or --calibration-samples N to generate N random "
            "samples (real data calibrates far better); dynamic mode needs none"
        )
    if held_out is not None:
        return given, held_out
    if calibration is None:  # generated: validate on a fresh draw
        return given, generate_samples(specs, max(16, given.count // 4), seed=seed + 1, purpose="validation")
    return given.split(HELD_OUT_FRACTION)
