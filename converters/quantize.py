"""Quantize an FP32 ONNX model (dynamic INT8, static INT8, or FP16), measure it, and gate it on accuracy.

:func:`quantize_model` works only inside a scratch folder the caller owns: it never writes next to the
source model. Publishing the result (a new repository version, ``--output``, a mobile export) is the caller's
step and happens only when ``result.report.accuracy.passed``.

INT8 uses ONNX Runtime's quantizer after its pre-processing step (``quant_pre_process``: shape inference and
graph optimization). Activations are uint8 and weights int8 (U8S8, the x86 path); ``reduce_range`` follows the
CPU (see :mod:`.quantize_cpu`). FP16 uses ``onnxruntime.transformers.float16``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .quantize_cpu import decide_reduce_range, read_cpu_features
from .quantize_data import InputSpec, SampleSet, generate_samples, load_npz, model_inputs
from .quantize_errors import QuantizeError
from .quantize_gate import Task, compare_outputs, run_model
from .quantize_measure import LATENCY_THREADS, count_converted_nodes, median_latency_ms
from .quantize_report import QuantizationReport

if TYPE_CHECKING:
    import onnx

    from .mobile import OptimizationStyle, OrtExport

__all__ = [
    "DEFAULT_VALIDATION_SAMPLES",
    "HELD_OUT_FRACTION",
    "Mode",
    "QuantizeOptions",
    "QuantizeResult",
    "quantize_model",
]

Mode = Literal["dynamic", "static", "float16", "none"]
DEFAULT_VALIDATION_SAMPLES = 64
HELD_OUT_FRACTION = 0.2
_CALIBRATION_BATCH = 16
_CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True, kw_only=True)
class QuantizeOptions:
    """What to do. ``mode="none"`` keeps FP32 (an ORT export of the model as it is).

    ``calibration``: an ``.npz`` of samples; ``calibration_samples``: use that many of them, or generate that
    many when no file is given. ``validation``: a separate ``.npz`` for the gate; without it the gate uses the
    last :data:`HELD_OUT_FRACTION` of the calibration samples (static) or all of them (dynamic, float16).
    ``reduce_range``: ``None`` decides from the CPU. ``keep_io_types``: FP16 mode keeps FP32 inputs/outputs.
    """

    mode: Mode
    quant_format: Literal["qdq", "qoperator"] = "qdq"
    per_channel: bool = False
    reduce_range: bool | None = None
    calibration: Path | None = None
    calibration_samples: int | None = None
    calibration_method: str = "minmax"
    validation: Path | None = None
    max_accuracy_drop: float = 0.01
    max_abs_error: float | None = None
    task: Task = "auto"
    labelled_outputs: tuple[str, ...] = ()
    keep_io_types: bool = True
    latency_runs: int = 50
    ort_style: OptimizationStyle | None = "fixed"  # None: no .ort (no size, latency or check for it)
    ort_target_platform: Literal["amd64", "arm"] | None = None
    keep_debug_info: bool = False
    seed: int = 0


@dataclass(frozen=True, slots=True)
class QuantizeResult:
    """The converted model (inside the scratch folder), its ``.ort`` export if asked, and the report."""

    model_path: Path
    ort: OrtExport | None
    report: QuantizationReport


def _load(path: Path) -> onnx.ModelProto:
    import onnx

    if not path.is_file():
        raise QuantizeError(f"{path}: no such model file")
    try:
        return onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError and others
        raise QuantizeError(f"{path}: not a readable ONNX model ({error})") from error


def _datasets(specs: list[InputSpec], options: QuantizeOptions) -> tuple[SampleSet | None, SampleSet]:
    """(calibration samples or None, validation samples)."""
    count = options.calibration_samples
    if count is not None and count < 1:
        raise QuantizeError(f"--calibration-samples must be at least 1, not {count}")
    given: SampleSet | None = None
    if options.calibration is not None:
        given = load_npz(options.calibration, specs)
        if count is not None:
            given = given.take(0, count, f"{options.calibration}, first {min(count, given.count)} samples")
    elif count is not None:
        given = generate_samples(specs, count, seed=options.seed, purpose="calibration")
    validation = load_npz(options.validation, specs) if options.validation is not None else None

    if options.mode != "static":
        if validation is None:
            validation = given or generate_samples(
                specs, DEFAULT_VALIDATION_SAMPLES, seed=options.seed, purpose="validation"
            )
        return None, validation
    if given is None:
        raise QuantizeError(
            "static quantization needs calibration data: pass --calibration FILE.npz (one array per model "
            "input, keyed by its name, samples on axis 0) or --calibration-samples N to generate N random "
            "samples (real data calibrates far better); dynamic mode needs none"
        )
    if validation is not None:
        return given, validation
    if options.calibration is None:  # generated: validate on a fresh draw
        return given, generate_samples(
            specs, max(16, given.count // 4), seed=options.seed + 1, purpose="validation"
        )
    return given.split(HELD_OUT_FRACTION)


def _strip_debug_info(graph: onnx.GraphProto) -> int:
    """Drop per-node doc strings and metadata (exporter stack traces, scopes), in subgraphs too; return the
    bytes they took."""
    import onnx

    removed = len(graph.doc_string)
    graph.doc_string = ""
    for node in graph.node:
        removed += len(node.doc_string) + sum(p.ByteSize() for p in node.metadata_props)
        node.doc_string = ""
        del node.metadata_props[:]
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                removed += _strip_debug_info(attribute.g)
            for subgraph in attribute.graphs:
                removed += _strip_debug_info(subgraph)
    return removed


def _preprocess(source: Path, target: Path) -> str:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(target))
    except Exception as first:  # symbolic shape inference fails on some graphs; ORT's advice is to skip it
        try:
            quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
        except Exception as error:
            raise QuantizeError(
                f"{source}: ONNX Runtime's quantization pre-processing failed: {error}"
            ) from error
        return f"quant_pre_process (symbolic shape inference skipped: {first})"
    return "quant_pre_process (symbolic shape inference, ONNX shape inference, graph optimization)"


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a :class:`SampleSet`."""

    def __init__(self, samples: SampleSet) -> None:
        self._samples = samples
        self._batches = samples.batches(_CALIBRATION_BATCH)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = self._samples.batches(_CALIBRATION_BATCH)


def _quantize_int8(
    pre: Path, target: Path, calibration: SampleSet | None, options: QuantizeOptions, rr: bool
) -> None:
    from onnxruntime import quantization as q

    with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints progress
        if options.mode == "dynamic":
            q.quantize_dynamic(
                str(pre),
                str(target),
                per_channel=options.per_channel,
                reduce_range=rr,
                weight_type=q.QuantType.QInt8,
            )
            return
        if options.calibration_method not in _CALIBRATION_METHODS:
            raise QuantizeError(f"calibration method must be one of {_CALIBRATION_METHODS}")
        method = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
        assert calibration is not None
        q.quantize_static(
            str(pre),
            str(target),
            _Reader(calibration),
            quant_format=q.QuantFormat.QDQ if options.quant_format == "qdq" else q.QuantFormat.QOperator,
            per_channel=options.per_channel,
            reduce_range=rr,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            calibrate_method=q.CalibrationMethod[method[options.calibration_method]],
        )


@dataclass(slots=True)
class _How:
    """How the conversion went, for the report."""

    cpu: str
    reduce_range: bool | None = None
    reduce_range_reason: str | None = None
    preprocessing: str | None = None
    debug_info_removed: int = 0


def _convert(
    source: Path,
    work: Path,
    calibration: SampleSet | None,
    options: QuantizeOptions,
    progress: Callable[[str], None],
) -> tuple[Path, _How]:
    """Write the converted model into ``work``; return it and how it was made."""
    import onnx

    target = work / "model.onnx"
    cpu = read_cpu_features()
    how = _How(cpu=f"{cpu.model_name or cpu.machine} ({cpu.machine}; flags from {cpu.source})")
    if options.mode == "none":
        onnx.save(_load(source), str(target))
    elif options.mode == "float16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        progress("converting weights and activations to FP16")
        model = convert_float_to_float16(_load(source), keep_io_types=options.keep_io_types)
        onnx.save(model, str(target))
    else:
        decision = decide_reduce_range(cpu, options.reduce_range)
        how.reduce_range, how.reduce_range_reason = decision.value, decision.reason
        progress("pre-processing (quant_pre_process)")
        how.preprocessing = _preprocess(source, work / "preprocessed.onnx")
        progress(f"quantizing ({options.mode}{', calibrating' if calibration else ''})")
        try:
            _quantize_int8(work / "preprocessed.onnx", target, calibration, options, decision.value)
        except QuantizeError:
            raise
        except Exception as error:  # onnxruntime's quantizer raises anything from ValueError to Fail
            raise QuantizeError(
                f"{source}: ONNX Runtime could not quantize it ({options.mode}): {error}"
            ) from error
    if not options.keep_debug_info:
        stripped = _load(target)
        how.debug_info_removed = _strip_debug_info(stripped.graph)
        if how.debug_info_removed:
            onnx.save(stripped, str(target))
    return target, how


def quantize_model(
    source: Path, work: Path, options: QuantizeOptions, *, progress: Callable[[str], None] = lambda _: None
) -> QuantizeResult:
    """Convert ``source`` as ``options`` say into ``work`` (an existing empty scratch folder); measure it."""
    import numpy as np
    import onnxruntime as ort

    from .mobile import convert_to_ort

    model = _load(source)
    specs = model_inputs(source, model)
    calibration, validation = _datasets(specs, options)
    target, how = _convert(source, work, calibration, options, progress)

    progress(f"comparing with FP32 on {validation.count} samples")
    reference = run_model(source, validation)
    try:
        candidate = run_model(target, validation)
    except Exception as error:  # onnxruntime refuses models it cannot run (e.g. a missing kernel)
        raise QuantizeError(
            f"the {options.mode} model of {source} does not run in ONNX Runtime: {error}"
        ) from error
    accuracy = compare_outputs(
        reference,
        candidate,
        samples=validation,
        max_accuracy_drop=options.max_accuracy_drop,
        max_abs_error=options.max_abs_error,
        task=options.task,
        labelled=options.labelled_outputs,
    )

    exported = None
    ort_error = None
    if options.ort_style is not None:
        progress("converting to the ORT format")
        exported = convert_to_ort(
            target, work / "ort", style=options.ort_style, target_platform=options.ort_target_platform
        )
        from_ort = run_model(exported.ort_path, validation, session_config=exported.session_config)
        ort_error = max(
            (float(np.max(np.abs(from_ort[k].astype(np.float64) - v.astype(np.float64)), initial=0.0)))
            for k, v in candidate.items()
        )

    progress(f"timing {options.latency_runs} runs of each model")
    feed = next(validation.take(0, 1, "").batches(1))
    sizes = {"fp32": source.stat().st_size}
    latency = {"fp32": median_latency_ms(source, feed, options.latency_runs)}
    if options.mode != "none":
        sizes["converted"] = target.stat().st_size
        latency["converted"] = median_latency_ms(target, feed, options.latency_runs)
    if exported is not None:
        sizes["ort"] = exported.ort_path.stat().st_size
        latency["ort"] = median_latency_ms(
            exported.ort_path, feed, options.latency_runs, session_config=exported.session_config
        )

    notes = []
    if how.debug_info_removed:
        notes.append(
            f"removed {how.debug_info_removed:,} bytes of per-node debug metadata (exporter stack traces, "
            "scopes) from the converted model; --keep-debug-info keeps it"
        )
    if options.mode == "float16" and exported is not None:
        notes.append(
            "FP16 is meant for GPUs: the .ort is optimized for the CPU execution provider, which computes "
            "FP16 nodes in FP32 behind Cast nodes (hence its size and latency here)"
        )
    report = QuantizationReport(
        source=str(source),
        mode=options.mode,
        quant_format=options.quant_format if options.mode == "static" else None,
        per_channel=options.per_channel,
        reduce_range=how.reduce_range,
        reduce_range_reason=how.reduce_range_reason,
        cpu=how.cpu,
        preprocessing=how.preprocessing,
        calibration=None if calibration is None else f"{calibration.source} ({options.calibration_method})",
        accuracy=accuracy,
        sizes=sizes,
        latency_ms=latency,
        latency_runs=options.latency_runs,
        latency_threads=LATENCY_THREADS,
        nodes_converted={} if options.mode == "none" else count_converted_nodes(_load(target), options.mode),
        ort_vs_onnx_max_abs_error=ort_error,
        ort_session_config=exported.session_config if exported else {},
        onnxruntime_version=ort.__version__,
        notes=notes,
    )
    return QuantizeResult(target, exported, report)
