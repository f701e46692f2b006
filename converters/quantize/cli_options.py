"""The options ``modelport quantize`` and ``modelport export-mobile`` share, declared once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["conversion_options"]

F = TypeVar("F", bound=Callable[..., Any])


def conversion_options(modes: tuple[str, ...], mode_flag: str) -> Callable[[F], F]:
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
            help=(
                "Samples .npz: one array per model input, keyed by its name, samples on axis 0 (default: the"
                " version's samples.npz, kept by its conversion, when it has one)."
            ),
        ),
        click.option(
            "--calibration-samples",
            type=click.IntRange(min=1),
            default=None,
            help="Use N samples of --calibration, or generate N random ones without any samples file.",
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
        click.option(
            "--explain",
            is_flag=True,
            help="INT8: quantize each weighted layer alone and report what each costs, costliest first.",
        ),
        click.option(
            "--auto-exclude",
            is_flag=True,
            help="INT8: when the gate fails, keep the fewest costliest layers in FP32 that make it pass.",
        ),
        click.option(
            "--int8-io",
            is_flag=True,
            help="Static QDQ: take and give 8-bit inputs and outputs (scale and zero point reported).",
        ),
        click.option("--overwrite", is_flag=True, help="Replace files at --output."),
        click.option("--verbose", is_flag=True, help="Show tracebacks and ONNX Runtime's messages."),
    ]

    def apply(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return apply
