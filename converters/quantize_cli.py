"""``modelport quantize`` and ``modelport export-mobile``.

Both read a model version from a repository, convert it (:mod:`.quantize`), print the report and gate on
accuracy. Nothing is written anywhere unless the gate passes. Errors are one line naming the file or option;
``--verbose`` shows tracebacks.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["export_mobile", "quantize"]

F = TypeVar("F", bound=Callable[..., Any])
_MOBILE_REPORT = "mobile_export.json"


def _conversion_options(modes: tuple[str, ...], mode_flag: str) -> Callable[[F], F]:
    """The options both commands share, applied in one place."""
    options = [
        click.option(
            "--repository",
            type=click.Path(path_type=Path, file_okay=False),
            required=True,
            help="Model repository folder.",
        ),
        click.option("--name", required=True, help="Model name (its folder in the repository)."),
        click.option(
            "--version",
            "version",
            default=None,
            help="Version to convert (default: the highest that is not itself a conversion).",
        ),
        click.option(
            mode_flag,
            "mode",
            type=click.Choice(modes),
            required=mode_flag == "--mode",
            help="dynamic / static INT8, or FP16 weights and activations.",
        ),
        click.option(
            "--calibration",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Samples .npz: one array per model input, keyed by its name, samples on axis 0.",
        ),
        click.option(
            "--calibration-samples",
            type=click.IntRange(min=1),
            default=None,
            help="Use N samples of --calibration, or generate N random ones without it.",
        ),
        click.option(
            "--validation",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Samples .npz for the accuracy gate (default: held-out calibration samples).",
        ),
        click.option(
            "--calibration-method",
            type=click.Choice(["minmax", "entropy", "percentile"]),
            default="minmax",
            show_default=True,
            help="Static mode: how activation ranges are chosen.",
        ),
        click.option("--per-channel", is_flag=True, help="One scale per output channel of each weight."),
        click.option(
            "--format",
            "quant_format",
            type=click.Choice(["qdq", "qoperator"]),
            default=None,
            help="Static mode: QuantizeLinear/DequantizeLinear pairs (default) or quantized operators.",
        ),
        click.option(
            "--reduce-range/--no-reduce-range",
            default=None,
            help="7-bit weights; default: decided from the CPU's VNNI support.",
        ),
        click.option(
            "--keep-io-types/--no-keep-io-types",
            default=True,
            show_default=True,
            help="FP16 mode: keep FP32 model inputs and outputs.",
        ),
        click.option(
            "--max-accuracy-drop",
            type=click.FloatRange(min=0),
            default=0.01,
            show_default=True,
            help="Bound on the share of changed top-1 decisions (classifiers) or on mean abs error / "
            "std of the FP32 output (other outputs).",
        ),
        click.option(
            "--max-abs-error",
            type=click.FloatRange(min=0),
            default=None,
            help="Also refuse when any output's max abs error vs FP32 exceeds this.",
        ),
        click.option(
            "--task",
            type=click.Choice(["auto", "classifier", "regression"]),
            default="auto",
            show_default=True,
            help="How outputs are judged; auto: labels, output name, softmax rows.",
        ),
        click.option(
            "--runs",
            type=click.IntRange(min=1),
            default=50,
            show_default=True,
            help="Runs per model for the median latency.",
        ),
        click.option(
            "--keep-debug-info",
            is_flag=True,
            help="Keep exporter metadata and internal tensor names in the converted model.",
        ),
        click.option("--overwrite", is_flag=True, help="Replace files at --output."),
        click.option("--verbose", is_flag=True, help="Show tracebacks and ONNX Runtime's messages."),
    ]

    def apply(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return apply


def _run(verbose: bool, body: Callable[[], None]) -> None:
    """Run ``body``, turning failures into one-line errors unless ``--verbose``."""
    import logging

    import onnxruntime as ort

    from .quantize_errors import QuantizeError

    # ONNX Runtime's quantizer and converter log advice and progress through the root logger and C++ logging.
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    ort.set_default_logger_severity(1 if verbose else 3)
    try:
        body()
    except (click.ClickException, click.Abort):
        raise
    except QuantizeError as error:
        if verbose:
            raise
        raise click.ClickException(str(error)) from None
    except Exception as error:
        if verbose:
            raise
        raise click.ClickException(
            f"unexpected {type(error).__name__}: {error} (--verbose shows the traceback)"
        ) from None


def _convert(
    params: dict[str, Any], mode: str, *, ort_style: str | None, target_platform: str | None = None
) -> Any:
    """Resolve the version, convert it in a scratch folder, print the report; (version, result, scratch)."""
    from rich.console import Console

    from .quantize import QuantizeOptions, quantize_model
    from .quantize_errors import QuantizeError
    from .quantize_report import print_report
    from .quantize_repository import labelled_outputs, resolve_version

    if params["quant_format"] is not None and mode != "static":
        raise QuantizeError(
            "--format applies to static quantization only (--mode static / --quantize static)"
        )
    source = resolve_version(params["repository"], params["name"], params["version"])
    options = QuantizeOptions(
        mode=mode,  # type: ignore[arg-type]  # click.Choice guarantees the literal
        quant_format=params["quant_format"] or "qdq",
        per_channel=params["per_channel"],
        reduce_range=params["reduce_range"],
        calibration=params["calibration"],
        calibration_samples=params["calibration_samples"],
        calibration_method=params["calibration_method"],
        validation=params["validation"],
        max_accuracy_drop=params["max_accuracy_drop"],
        max_abs_error=params["max_abs_error"],
        task=params["task"],
        labelled_outputs=labelled_outputs(source.config_path),
        keep_io_types=params["keep_io_types"],
        latency_runs=params["runs"],
        keep_debug_info=params["keep_debug_info"],
        ort_style=ort_style,  # type: ignore[arg-type]
        ort_target_platform=target_platform,  # type: ignore[arg-type]
    )
    err = Console(stderr=True)
    scratch = Path(tempfile.mkdtemp(prefix="modelport-quantize-"))
    err.print(f"[bold]{source.model_path}[/bold] -> {mode}")
    result = quantize_model(
        source.model_path, scratch, options, progress=lambda step: err.print(f"  - {step}")
    )
    print_report(result.report, Console())
    if not result.report.accuracy.passed:
        shutil.rmtree(scratch, ignore_errors=True)
        raise click.ClickException(f"{'; '.join(result.report.accuracy.failures)}; nothing was written")
    return source, result, scratch


def _prepare_output(path: Path, overwrite: bool, names: list[str]) -> None:
    from .quantize_errors import QuantizeError

    clashes = [path / n for n in names if (path / n).exists()]
    if clashes and not overwrite:
        raise QuantizeError(f"{clashes[0]}: already exists; choose another --output or pass --overwrite")
    path.mkdir(parents=True, exist_ok=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@_conversion_options(("dynamic", "static", "float16"), "--mode")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write here (a .onnx file, or a folder) instead of a new version in the repository.",
)
def quantize(**params: Any) -> None:
    """Quantize a model version to INT8 (or FP16), gate it on accuracy, and add it as a new version."""

    def body() -> None:
        from rich.console import Console

        from .quantize_report import save_report
        from .quantize_repository import CONVERSION_REPORT as _REPORT
        from .quantize_repository import check_config, publish_version, serving_note

        source, result, scratch = _convert(params, params["mode"], ort_style="fixed")
        try:
            report_path = scratch / _REPORT
            output: Path | None = params["output"]
            if output is not None:
                model_file = output if output.suffix == ".onnx" else output / "model.onnx"
                _prepare_output(model_file.parent, params["overwrite"], [model_file.name, _REPORT])
                result.report.output = str(model_file)
                save_report(result.report, report_path)
                shutil.copyfile(result.model_path, model_file)
                shutil.copyfile(report_path, model_file.parent / _REPORT)
                written = model_file
            else:
                check_config(source.config_path, result.model_path)
                save_report(result.report, report_path)
                written = publish_version(
                    source.model_dir, {"model.onnx": result.model_path, _REPORT: report_path}
                )
                result.report.output = str(written / "model.onnx")
                save_report(result.report, written / _REPORT)
            Console(stderr=True).print(f"[green]wrote {written}[/green] (report: {_REPORT} beside it)")
            if output is None:
                Console(stderr=True).print(
                    serving_note(source.config_path, source.model_dir, int(written.name))
                )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    _run(params["verbose"], body)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@_conversion_options(("dynamic", "static", "float16"), "--quantize")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=True, file_okay=False),
    required=True,
    help="Folder for model.ort, required_operators.config, model.onnx and the report.",
)
@click.option(
    "--optimization-style",
    type=click.Choice(["fixed", "runtime"]),
    default="fixed",
    show_default=True,
    help="runtime: save optimizations to replay at load time (NNAPI, CoreML); writes "
    "model.with_runtime_opt.ort, which needs session.enable_saved_runtime_optimizations=1.",
)
@click.option(
    "--target-platform",
    type=click.Choice(["amd64", "arm"]),
    default=None,
    help="Allow platform-specific optimizations (default: none, the .ort runs everywhere).",
)
def export_mobile(**params: Any) -> None:
    """Export a model version as an ONNX Runtime Mobile .ort file (optionally quantized first)."""

    def body() -> None:
        from rich.console import Console

        from .quantize_report import save_report

        mode = params["mode"] or "none"
        _, result, scratch = _convert(
            params, mode, ort_style=params["optimization_style"], target_platform=params["target_platform"]
        )
        try:
            exported = result.ort
            assert exported is not None
            output: Path = params["output"]
            names = [exported.ort_path.name, exported.operators_config.name, "model.onnx", _MOBILE_REPORT]
            _prepare_output(output, params["overwrite"], names)
            result.report.output = str(output / exported.ort_path.name)
            shutil.copyfile(exported.ort_path, output / exported.ort_path.name)
            shutil.copyfile(exported.operators_config, output / exported.operators_config.name)
            shutil.copyfile(result.model_path, output / "model.onnx")
            save_report(result.report, output / _MOBILE_REPORT)
            Console(stderr=True).print(f"[green]wrote {', '.join(names)} to {output}[/green]")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    _run(params["verbose"], body)
