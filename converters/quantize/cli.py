"""``modelport quantize`` and ``modelport export-mobile``.

Both read a model version from a repository, convert it (:func:`.api.quantize_model`), print the report and
gate on accuracy. Nothing is written anywhere unless the gate passes. Errors are one line naming the file or
option; ``--verbose`` shows tracebacks.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from .cli_options import conversion_options

if TYPE_CHECKING:
    from .api import Mode, QuantizeResult
    from .repository import ModelVersion

__all__ = ["export_mobile", "quantize"]

_MOBILE_REPORT = "mobile_export.json"


def _run(verbose: bool, body: Callable[[], None]) -> None:
    """Run ``body``, turning failures into one-line errors unless ``--verbose``."""
    import logging

    import onnxruntime as ort

    from ..errors import ConversionError

    # ONNX Runtime's quantizer and converter log advice and progress through the root logger and C++ logging.
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    ort.set_default_logger_severity(1 if verbose else 3)
    try:
        body()
    except (click.ClickException, click.Abort):
        raise
    except ConversionError as error:  # QuantizeError, and the samples' errors shared with conversion
        if verbose:
            raise
        raise click.ClickException(str(error)) from None
    except ImportError as error:
        if verbose:
            raise
        raise click.ClickException(
            f"this command needs a package that is not installed ({error.name}): "
            "pip install 'modelport[convert]'"
        ) from None
    except Exception as error:
        if verbose:
            raise
        raise click.ClickException(
            f"unexpected {type(error).__name__}: {error} (--verbose shows the traceback)"
        ) from None


def _convert(
    params: dict[str, Any], mode: str, scratch: Path, *, ort_style: str, target_platform: str | None = None
) -> tuple[ModelVersion, QuantizeResult]:
    """Resolve the version, convert it in ``scratch``, print the report, and stop unless the gate passed."""
    from rich.console import Console

    from ..errors import QuantizeError
    from ..samples import KEPT_SAMPLES_FILE
    from .api import QuantizeOptions, quantize_model
    from .report import print_report
    from .repository import labelled_outputs, resolve_version

    if params["quant_format"] is not None and mode != "static":
        raise QuantizeError(
            "--format applies to static quantization only (--mode static / --quantize static)"
        )
    source = resolve_version(params["repository"], params["name"], params["version"])
    err = Console(stderr=True)
    calibration = params["calibration"]
    kept = source.model_path.parent / KEPT_SAMPLES_FILE
    if calibration is None and kept.is_file():
        calibration = kept
        err.print(f"samples: {kept} (kept by the conversion); --calibration FILE.npz gives others")
    options = QuantizeOptions(
        mode=cast("Mode", mode),  # click.Choice guarantees the literal
        quant_format=params["quant_format"] or "qdq",
        per_channel=params["per_channel"],
        reduce_range=params["reduce_range"],
        calibration=calibration,
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
        explain=params["explain"],
        auto_exclude=params["auto_exclude"],
        int8_io=params["int8_io"],
        ort_style=cast("Any", ort_style),  # click.Choice: "fixed" | "runtime"
        ort_target_platform=cast("Any", target_platform),  # click.Choice: "amd64" | "arm" | None
    )
    err.print(f"[bold]{source.model_path}[/bold] -> {mode}")
    result = quantize_model(
        source.model_path, scratch, options, progress=lambda step: err.print(f"  - {step}")
    )
    print_report(result.report, Console())
    if not result.report.accuracy.passed:
        raise click.ClickException(f"{'; '.join(result.report.accuracy.failures)}; nothing was written")
    return source, result


def _check_output(path: Path, overwrite: bool, names: list[str]) -> None:
    """Refuse, before any work, to overwrite files at ``--output`` unless ``--overwrite``."""
    from ..errors import QuantizeError

    if path.exists() and not path.is_dir():
        raise QuantizeError(f"{path}: exists and is not a folder; choose another --output")
    clashes = [path / n for n in names if (path / n).exists()]
    if clashes and not overwrite:
        raise QuantizeError(f"{clashes[0]}: already exists; choose another --output or pass --overwrite")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@conversion_options(("dynamic", "static", "float16"), "--mode")
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

        from .report import save_report
        from .repository import CONVERSION_REPORT as _REPORT
        from .repository import check_config, publish_version, serving_note

        output: Path | None = params["output"]
        model_file = None
        if output is not None:
            model_file = output if output.suffix == ".onnx" else output / "model.onnx"
            _check_output(model_file.parent, params["overwrite"], [model_file.name, _REPORT])
        with tempfile.TemporaryDirectory(prefix="modelport-quantize-") as scratch:
            source, result = _convert(params, params["mode"], Path(scratch), ort_style="fixed")
            report_path = Path(scratch) / _REPORT
            if model_file is not None:
                model_file.parent.mkdir(parents=True, exist_ok=True)
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
        err = Console(stderr=True)
        err.print(f"[green]wrote {written}[/green] (report: {_REPORT} beside it)")
        if model_file is None:
            err.print(serving_note(source.config_path, source.model_dir, int(written.name)))

    _run(params["verbose"], body)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@conversion_options(("dynamic", "static", "float16"), "--quantize")
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

        from .mobile import ort_file_names
        from .report import save_report

        mode = params["mode"] or "none"
        output: Path = params["output"]
        ort_name, config_name = ort_file_names(params["optimization_style"])
        names = [ort_name, config_name, "model.onnx", _MOBILE_REPORT]
        _check_output(output, params["overwrite"], names)
        with tempfile.TemporaryDirectory(prefix="modelport-export-") as scratch:
            _, result = _convert(
                params,
                mode,
                Path(scratch),
                ort_style=params["optimization_style"],
                target_platform=params["target_platform"],
            )
            exported = result.ort
            assert exported is not None  # asked for with ort_style
            output.mkdir(parents=True, exist_ok=True)
            result.report.output = str(output / exported.ort_path.name)
            shutil.copyfile(exported.ort_path, output / exported.ort_path.name)
            shutil.copyfile(exported.operators_config, output / exported.operators_config.name)
            shutil.copyfile(result.model_path, output / "model.onnx")
            save_report(result.report, output / _MOBILE_REPORT)
        Console(stderr=True).print(f"[green]wrote {', '.join(names)} to {output}[/green]")

    _run(params["verbose"], body)
