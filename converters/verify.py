"""The parity check: the framework and ONNX Runtime run the same inputs, output by output, batch by batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import onnx

from .errors import InvalidOption, OutputMismatch, VerificationFailed
from .exported import Arrays, ExportedModel
from .onnx_checks import embedding_vocabulary
from .options import VerifyOptions
from .report import OutputError
from .samples import DEFAULT_INT_HIGH, SampleSet, generate, load_npz
from .tensor_specs import TensorSpec

__all__ = ["batch_sizes_for", "compare", "verify"]


def batch_sizes_for(
    inputs: Sequence[TensorSpec], options: VerifyOptions, rows: int | None
) -> tuple[int, ...]:
    """The batch sizes to test: ``options.batch_sizes`` for a dynamic batch (capped at ``rows`` samples), else
    the fixed batch."""
    if inputs and all(spec.batch_dynamic for spec in inputs):
        sizes = (
            options.batch_sizes if rows is None else tuple(min(size, rows) for size in options.batch_sizes)
        )
        return tuple(dict.fromkeys(sizes))
    fixed = next((spec.dims[0] for spec in inputs if spec.dims and spec.dims[0] > 0), 1)
    return (fixed,)


def compare(
    name: str,
    batch: int,
    actual: npt.NDArray[np.generic],
    expected: npt.NDArray[np.generic],
    options: VerifyOptions,
) -> OutputError:
    """Max absolute and relative error of ``actual`` (ONNX Runtime) against ``expected`` (the framework)."""
    if actual.shape != expected.shape:
        return OutputError(
            output=name,
            batch_size=batch,
            max_abs_error=float("inf"),
            max_rel_error=float("inf"),
            passed=False,
        )
    got = actual.astype(np.float64)
    want = expected.astype(np.float64)
    difference = np.abs(got - want)
    both_nan = np.isnan(got) & np.isnan(want)
    difference[both_nan] = 0.0
    difference[np.isnan(difference)] = np.inf
    magnitude = np.abs(want)
    significant = magnitude > options.atol
    max_abs = float(difference.max()) if difference.size else 0.0
    max_rel = float((difference[significant] / magnitude[significant]).max()) if significant.any() else 0.0
    passed = bool(np.all(difference <= options.atol + options.rtol * magnitude))
    return OutputError(
        output=name, batch_size=batch, max_abs_error=max_abs, max_rel_error=max_rel, passed=passed
    )


def _session(model: onnx.ModelProto) -> object:
    import onnxruntime

    session_options = onnxruntime.SessionOptions()
    session_options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        model.SerializeToString(), session_options, providers=["CPUExecutionProvider"]
    )


def verify(
    exported: ExportedModel,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    options: VerifyOptions,
    *,
    source: str,
) -> tuple[OutputError, ...]:
    """Run both and compare every output at every tested batch size.

    Raises :class:`VerificationFailed` listing the outputs beyond tolerance (or ONNX Runtime's refusal).
    """
    samples: SampleSet | None = load_npz(options.samples, inputs) if options.samples is not None else None
    rows = samples.count if samples else None
    int_high = embedding_vocabulary(exported.model) or DEFAULT_INT_HIGH
    try:
        session = _session(exported.model)
    except Exception as error:
        raise VerificationFailed(f"{source}: ONNX Runtime cannot load the exported graph: {error}") from error
    rng = np.random.default_rng(options.seed)
    results: list[OutputError] = []
    batch_sizes = batch_sizes_for(inputs, options, rows)
    if rows is not None and rows < max(batch_sizes):
        raise InvalidOption(
            f"{options.samples}: has {rows} rows, fewer than the model's fixed batch of {max(batch_sizes)}; "
            "give at least that many"
        )
    for batch in batch_sizes:
        feeds: Arrays = (
            dict(samples.take(0, batch, samples.source).arrays)
            if samples
            else generate(inputs, batch=batch, rng=rng, int_high=int_high)
        )
        try:
            expected = exported.run(feeds)
        except Exception as error:
            raise VerificationFailed(
                f"{source}: the {exported.framework} model failed on the generated inputs at batch {batch} "
                f"({type(error).__name__}: {str(error)[:200]}); pass --samples"
            ) from error
        try:
            actual = session.run(None, feeds)  # type: ignore[attr-defined]  # onnxruntime has no stubs
        except Exception as error:
            raise VerificationFailed(
                f"{source}: ONNX Runtime failed at batch {batch}: {str(error).splitlines()[0]}"
            ) from error
        for spec, value in zip(outputs, actual, strict=True):
            if spec.name not in expected:
                raise VerificationFailed(
                    f"{source}: the {exported.framework} model gave no output '{spec.name}' "
                    f"(it gave: {', '.join(expected)})"
                )
            results.append(compare(spec.name, batch, np.asarray(value), expected[spec.name], options))
    failed = [
        OutputMismatch(e.output, e.batch_size, e.max_abs_error, e.max_rel_error, options.atol, options.rtol)
        for e in results
        if not e.passed
    ]
    if failed:
        worst = max(failed, key=lambda m: m.max_abs_error)
        raise VerificationFailed(
            f"{source}: ONNX Runtime's outputs differ from {exported.framework}'s beyond tolerance "
            f"(worst: '{worst.output}' at batch {worst.batch_size}, max abs error "
            f"{worst.max_abs_error:.3g} > atol {options.atol:g} + rtol {options.rtol:g}); nothing written",
            failed,
        )
    return tuple(results)
