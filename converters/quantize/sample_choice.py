"""Which samples quantization calibrates on and which the accuracy gate compares on.

The samples themselves (reading an ``.npz``, generating, splitting, batching) are :mod:`..samples`, shared
with the parity check; this module chooses among them. Quantization reads ``.npz`` files ``per_sample``
(arrays may carry one more leading axis than the input), and generates floats uniform in [0, 1) (real data
calibrates far better) and integers below the embedding table an input indexes, else in {0, 1}.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidOption, QuantizeError
from ..onnx_checks import embedding_bounds, graph_signature
from ..samples import Array, SampleSet, generate, load_npz
from ..tensor_specs import DYNAMIC, TensorSpec, ort_dtype

if TYPE_CHECKING:
    import onnx

__all__ = [
    "DEFAULT_VALIDATION_SAMPLES",
    "HELD_OUT_FRACTION",
    "ModelInputs",
    "cast_feed",
    "generate_samples",
    "model_inputs",
    "select_samples",
]

DEFAULT_VALIDATION_SAMPLES = 64  # generated for the gate when no data is given (dynamic, float16)
HELD_OUT_FRACTION = 0.2  # of the calibration samples, kept back for the gate when no validation file is given
# Integer inputs that index no embedding table get {0, 1}: a mask or a flag more likely than an id.
_INT_HIGH = 2
_SUPPORTED = frozenset({"float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"})


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """A model's inputs (initializers excluded) and, per input name, the exclusive upper bound of the integer
    values it accepts where the graph reveals one (the row count of the embedding table it indexes)."""

    specs: tuple[TensorSpec, ...]
    int_bounds: Mapping[str, int] = field(default_factory=dict)


def model_inputs(model: onnx.ModelProto) -> ModelInputs:
    """The inputs of ``model`` that quantization feeds; :class:`QuantizeError` for a datatype it cannot."""
    inputs, _ = graph_signature(model)
    for spec in inputs:
        if spec.dtype not in _SUPPORTED:
            raise QuantizeError(
                f"input '{spec.name}' has type {spec.dtype}, which quantization does not support"
            )
    return ModelInputs(inputs, embedding_bounds(model))


def cast_feed(session: Any, feed: Mapping[str, Array]) -> dict[str, Array]:
    """``feed`` cast to the input types of ``session`` (an onnxruntime InferenceSession): a converted model
    may take FP16 where the samples, made for the FP32 model, are FP32."""
    wanted = {arg.name: ort_dtype(arg.type) for arg in session.get_inputs()}
    return {k: v if wanted.get(k) is None else v.astype(wanted[k], copy=False) for k, v in feed.items()}


def generate_samples(specs: ModelInputs, count: int, *, seed: int, purpose: str) -> SampleSet:
    """``count`` seeded random samples for ``specs`` (see the module docstring for the distributions).

    A model whose batch size is fixed (or that has no batch axis) gets each sample alone, with that batch.
    """
    fixed_batch = any(not spec.dims or spec.dims[0] != DYNAMIC for spec in specs.specs)
    bounds = {spec.name: specs.int_bounds.get(spec.name, _INT_HIGH) for spec in specs.specs}
    arrays = generate(
        specs.specs,
        batch=1 if fixed_batch else count,
        rng=np.random.default_rng(seed),
        int_high=bounds,
        floats="uniform",
        stack=count if fixed_batch else None,
    )
    source = f"{count} generated samples ({purpose}, seed {seed})"
    return SampleSet(arrays, source, stacked=fixed_batch, generated=True)


def select_samples(
    specs: ModelInputs,
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
        raise InvalidOption(f"--calibration-samples must be at least 1, not {count}")
    given: SampleSet | None = None
    if calibration is not None:
        given = load_npz(calibration, specs.specs, per_sample=True)
        if count is not None:
            given = given.take(0, count, f"{calibration}, first {min(count, given.count)} samples")
    elif count is not None:
        given = generate_samples(specs, count, seed=seed, purpose="calibration")
    held_out = load_npz(validation, specs.specs, per_sample=True) if validation is not None else None

    if not needs_calibration:
        if held_out is None:
            held_out = given or generate_samples(
                specs, DEFAULT_VALIDATION_SAMPLES, seed=seed, purpose="validation"
            )
        return None, held_out
    if given is None:
        raise InvalidOption(
            "static quantization needs calibration data: pass --calibration FILE.npz (one array per model "
            "input, keyed by its name, samples on axis 0) or --calibration-samples N to generate N random "
            "samples (real data calibrates far better), or convert the model with --samples so that its "
            "version keeps them (samples.npz); dynamic mode needs none"
        )
    if held_out is not None:
        return given, held_out
    if calibration is None:  # generated: validate on a fresh draw
        return given, generate_samples(specs, max(16, given.count // 4), seed=seed + 1, purpose="validation")
    return given.split(HELD_OUT_FRACTION)
