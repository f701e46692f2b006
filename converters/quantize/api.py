"""Quantize an FP32 ONNX model (dynamic INT8, static INT8, or FP16), measure it, and gate it on accuracy.

:func:`quantize_model` works only inside a scratch folder the caller owns: it never writes next to the
source model. Publishing the result (a new repository version, ``--output``, a mobile export) is the caller's
step and happens only when ``result.report.accuracy.passed``.

INT8 uses ONNX Runtime's quantizer after its pre-processing step (``quant_pre_process``: shape inference and
graph optimization). Activations are uint8 and weights int8 (U8S8, the x86 path); ``reduce_range`` follows the
CPU (see :mod:`.cpu`). FP16 uses ``onnxruntime.transformers.float16``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import QuantizeError
from ..samples import SampleSet
from .cpu import decide_reduce_range, read_cpu_features
from .gate import AccuracyReport, Task, compare_outputs, run_model
from .int8 import preprocess, quantize_int8
from .int8_io import IoQuantization, dequantize, int8_io, quantize_feed
from .measure import LATENCY_THREADS, count_converted_nodes, median_latency_ms
from .minify import minify
from .report import QuantizationReport
from .sample_choice import model_inputs, select_samples
from .sensitivity import Explanation, explain, name_every_node

if TYPE_CHECKING:
    import onnx

    from .mobile import OptimizationStyle, OrtExport

__all__ = [
    "Mode",
    "QuantizeOptions",
    "QuantizeResult",
    "quantize_model",
]

Mode = Literal["dynamic", "static", "float16", "none"]


@dataclass(frozen=True, kw_only=True)
class QuantizeOptions:
    """What to do. ``mode="none"`` keeps FP32 (an ORT export of the model as it is).

    ``calibration``, ``calibration_samples``, ``validation``: the samples, as
    :func:`.sample_choice.select_samples` reads them. ``reduce_range``: ``None`` decides from the CPU.
    ``keep_io_types``: FP16 mode keeps FP32 inputs/outputs. ``max_abs_error``: an optional second gate bound.
    ``explain`` / ``auto_exclude``: see :mod:`.sensitivity` (INT8 modes only).
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
    explain: bool = False  # INT8: measure each weighted layer's cost, quantized alone (.sensitivity)
    auto_exclude: bool = False  # INT8: when the gate fails, keep the fewest costliest layers in FP32
    int8_io: bool = False  # static QDQ: inputs and outputs carried in 8 bits (:mod:`.int8_io`)


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
        how.preprocessing = preprocess(source, work / "preprocessed.onnx")
        if options.explain or options.auto_exclude:
            preprocessed = _load(work / "preprocessed.onnx")
            if name_every_node(preprocessed):  # ONNX Runtime selects the layers to quantize by name
                onnx.save(preprocessed, str(work / "preprocessed.onnx"))
        progress(f"quantizing ({options.mode}{', calibrating' if calibration else ''})")
        quantize_layers(work, target, calibration, options, how)
    _strip(target, options, how)
    return target, how


def quantize_layers(
    work: Path,
    target: Path,
    calibration: SampleSet | None,
    options: QuantizeOptions,
    how: _How,
    *,
    only: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> None:
    """INT8-quantize ``work/preprocessed.onnx`` into ``target`` as ``options`` and ``how`` say, the layers
    named in ``only`` (``None``: all) less those in ``exclude``."""
    assert options.mode in ("dynamic", "static") and how.reduce_range is not None  # INT8 paths only
    quantize_int8(
        work / "preprocessed.onnx",
        target,
        mode=options.mode,
        calibration=calibration,
        quant_format=options.quant_format,
        per_channel=options.per_channel,
        reduce_range=how.reduce_range,
        calibration_method=options.calibration_method,
        nodes_to_quantize=only,
        nodes_to_exclude=exclude,
    )


def _strip(target: Path, options: QuantizeOptions, how: _How) -> None:
    import onnx

    if not options.keep_debug_info:
        stripped = _load(target)
        how.debug_info_removed = minify(stripped)
        if how.debug_info_removed:
            onnx.save(stripped, str(target))


def _explained(  # noqa: PLR0917  # private: the state of one quantize_model call
    work: Path,
    target: Path,
    calibration: SampleSet | None,
    options: QuantizeOptions,
    how: _How,
    validation: SampleSet,
    judge: Callable[[dict[str, Any]], AccuracyReport],
    accuracy: AccuracyReport,
    progress: Callable[[str], None],
) -> Explanation:
    """``--explain`` / ``--auto-exclude`` on the INT8 model at ``target`` (nothing for the other modes)."""
    if options.mode not in ("dynamic", "static"):
        return Explanation([], [])

    def trial(path: Path, only: Sequence[str] | None, exclude: Sequence[str]) -> AccuracyReport:
        quantize_layers(work, path, calibration, options, how, only=only, exclude=exclude)
        return judge(run_model(path, validation))

    return explain(
        _load(work / "preprocessed.onnx"),
        options.mode,
        work / "explain",
        trial,
        want_costs=options.explain,
        auto_exclude=options.auto_exclude,
        full=(target, accuracy),
        progress=progress,
    )


def _exclusion_notes(
    explained: Explanation, sizes: dict[str, int], latency: dict[str, float], feed: dict[str, Any], runs: int
) -> list[str]:
    if explained.full_model is None:
        return []
    full_size = explained.full_model.stat().st_size
    full_latency = median_latency_ms(explained.full_model, feed, runs)
    return [
        f"kept {len(explained.fp32_layers)} layer(s) in FP32 to pass the gate "
        f"({', '.join(explained.fp32_layers)}): {sizes['converted']:,} bytes vs {full_size:,} fully INT8, "
        f"median latency {latency['converted']:.3f} ms vs {full_latency:.3f} ms"
    ]


def _eight_bit_io(
    target: Path, options: QuantizeOptions, validation: SampleSet, candidate: dict[str, Any]
) -> tuple[list[IoQuantization], list[str], SampleSet]:
    """Rewrite ``target`` to take and give 8-bit tensors; check on the validation samples that it computes
    what it computed with float IO (``candidate``), to within one step of each output's scale. Returns what
    changed, the notes on what could not, and the validation samples as the rewritten model takes them."""
    import numpy as np
    import onnx

    if options.mode != "static" or options.quant_format != "qdq":
        raise QuantizeError("--int8-io needs static quantization in the QDQ format (--mode static)")
    model = _load(target)
    io, notes = int8_io(model)
    onnx.save(model, str(target))
    quantized = replace(validation, arrays=quantize_feed(validation.arrays, io))
    again = dequantize(run_model(target, quantized), io)
    for entry in io:
        if entry.kind == "output":
            error = float(np.max(np.abs(again[entry.name] - candidate[entry.name]), initial=0.0))
            if error > entry.scale * 1.01:
                raise QuantizeError(f"--int8-io changed output '{entry.name}' by {error:.3g}; report this")
    return io, notes, quantized


def quantize_model(
    source: Path, work: Path, options: QuantizeOptions, *, progress: Callable[[str], None] = lambda _: None
) -> QuantizeResult:
    """Convert ``source`` as ``options`` say into ``work`` (an existing empty scratch folder); measure it."""
    import numpy as np
    import onnxruntime as ort

    from .mobile import convert_to_ort

    model = _load(source)
    specs = model_inputs(model)
    calibration, validation = select_samples(
        specs,
        needs_calibration=options.mode == "static",
        calibration=options.calibration,
        calibration_samples=options.calibration_samples,
        validation=options.validation,
        seed=options.seed,
    )
    target, how = _convert(source, work, calibration, options, progress)

    progress(f"comparing with FP32 on {validation.count} samples")
    reference = run_model(source, validation)
    try:
        candidate = run_model(target, validation)
    except Exception as error:  # onnxruntime refuses models it cannot run (e.g. a missing kernel)
        raise QuantizeError(
            f"the {options.mode} model of {source} does not run in ONNX Runtime: {error}"
        ) from error

    def judge(outputs: dict[str, Any]) -> AccuracyReport:
        return compare_outputs(
            reference,
            outputs,
            samples=validation,
            max_accuracy_drop=options.max_accuracy_drop,
            max_abs_error=options.max_abs_error,
            task=options.task,
            labelled=options.labelled_outputs,
        )

    accuracy = judge(candidate)
    explained = _explained(work, target, calibration, options, how, validation, judge, accuracy, progress)
    if explained.model is not None and explained.accuracy is not None:
        explained.model.replace(target)
        _strip(target, options, how)
        candidate, accuracy = run_model(target, validation), explained.accuracy

    # io_validation: the samples as the converted model takes them (8-bit inputs with --int8-io).
    io, io_notes, io_validation = (
        _eight_bit_io(target, options, validation, candidate) if options.int8_io else ([], [], validation)
    )
    exported = None
    ort_error = None
    if options.ort_style is not None:
        progress("converting to the ORT format")
        exported = convert_to_ort(
            target, work / "ort", style=options.ort_style, target_platform=options.ort_target_platform
        )
        config = exported.session_config
        from_ort = dequantize(run_model(exported.ort_path, io_validation, session_config=config), io)
        ort_error = max(
            (float(np.max(np.abs(from_ort[k].astype(np.float64) - v.astype(np.float64)), initial=0.0)))
            for k, v in candidate.items()
        )

    progress(f"timing {options.latency_runs} runs of each model")
    feed = next(validation.take(0, 1, "").batches(1))
    sizes = {"fp32": source.stat().st_size}
    latency = {"fp32": median_latency_ms(source, feed, options.latency_runs)}
    io_feed = quantize_feed(feed, io)
    if options.mode != "none":
        sizes["converted"] = target.stat().st_size
        latency["converted"] = median_latency_ms(target, io_feed, options.latency_runs)
    if exported is not None:
        sizes["ort"] = exported.ort_path.stat().st_size
        latency["ort"] = median_latency_ms(
            exported.ort_path, io_feed, options.latency_runs, session_config=exported.session_config
        )

    notes = [*_exclusion_notes(explained, sizes, latency, feed, options.latency_runs), *io_notes]
    if options.auto_exclude and not accuracy.passed and explained.costs:
        notes.append("--auto-exclude: even with every weighted layer in FP32 the gate fails")
    if how.debug_info_removed:
        notes.append(
            f"saved {how.debug_info_removed:,} bytes of debug information (exporter metadata, long internal "
            "tensor names) in the converted model; --keep-debug-info keeps it"
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
        sensitivity=[asdict(cost) for cost in explained.costs],
        fp32_layers=explained.fp32_layers,
        int8_io=[asdict(entry) for entry in io],
    )
    return QuantizeResult(target, exported, report)
