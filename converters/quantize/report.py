"""The quantization report: one dataclass, saved as JSON beside the model and printed as a rich table."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..report import json_text
from .gate import AccuracyReport

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["QuantizationReport", "print_report", "save_report"]


@dataclass(kw_only=True)
class QuantizationReport:
    """Everything a quantized (or FP16, or ORT-only) export measured. Sizes in bytes, latencies in ms."""

    source: str
    mode: str  # "dynamic" | "static" | "float16" | "none" (ORT export of the FP32 model)
    quant_format: str | None
    per_channel: bool
    reduce_range: bool | None
    reduce_range_reason: str | None
    cpu: str
    preprocessing: str | None
    calibration: str | None
    accuracy: AccuracyReport
    sizes: dict[str, int]
    latency_ms: dict[str, float]
    latency_runs: int
    latency_threads: int
    nodes_converted: dict[str, int]
    ort_vs_onnx_max_abs_error: float | None = None
    ort_session_config: dict[str, str] = field(default_factory=dict)
    onnxruntime_version: str = ""
    output: str | None = None
    notes: list[str] = field(default_factory=list)
    sensitivity: list[dict[str, Any]] = field(default_factory=list)  # --explain: layers, costliest first
    fp32_layers: list[str] = field(default_factory=list)  # --auto-exclude: the layers kept in FP32
    int8_io: list[dict[str, Any]] = field(
        default_factory=list
    )  # --int8-io: name, kind, dtype, scale, zero point

    @property
    def size_ratio(self) -> float | None:
        """Size of the converted ONNX model relative to the FP32 one."""
        if "converted" not in self.sizes or not self.sizes.get("fp32"):
            return None
        return self.sizes["converted"] / self.sizes["fp32"]

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON document (with the accuracy verdict and the size ratio)."""
        data = asdict(self)
        data["accuracy"]["drop"] = self.accuracy.drop
        data["accuracy"]["passed"] = self.accuracy.passed
        data["accuracy"]["failures"] = self.accuracy.failures
        data["accuracy"]["top1_agreement_95ci"] = {
            out.name: self.accuracy.agreement_interval(out) for out in self.accuracy.outputs
        }
        data["size_ratio"] = self.size_ratio
        return data


def save_report(report: QuantizationReport, path: Path) -> None:
    """Write ``report`` to ``path`` as every report file is written (:func:`..report.json_text`)."""
    path.write_text(json_text(report.to_json()), encoding="utf-8")


def _kib(size: int) -> str:
    return f"{size / 1024:,.1f} KiB"


def _duration(milliseconds: float) -> str:
    return f"{milliseconds * 1000:.1f} µs" if milliseconds < 1 else f"{milliseconds:.2f} ms"


def print_report(report: QuantizationReport, console: Console) -> None:
    """Print the report as tables: models (size, latency), accuracy per output, converted nodes, decisions."""
    from rich.table import Table

    labels = {"fp32": "FP32 ONNX", "converted": f"{report.mode.upper()} ONNX", "ort": ".ort"}
    models = Table(title=f"{report.source}: {report.mode}", title_justify="left")
    models.add_column("model")
    models.add_column("size", justify="right")
    models.add_column("vs FP32", justify="right")
    models.add_column(f"median latency ({report.latency_runs} runs, batch 1)", justify="right")
    for key, label in labels.items():
        if key not in report.sizes:
            continue
        ratio = report.sizes[key] / report.sizes["fp32"] if report.sizes["fp32"] else math.nan
        latency = report.latency_ms.get(key)
        models.add_row(
            label,
            _kib(report.sizes[key]),
            f"{ratio:.0%}",
            "-" if latency is None else _duration(latency),
        )
    console.print(models)

    gate = report.accuracy
    accuracy = Table(
        title=f"accuracy vs FP32 on {gate.samples} samples ({gate.validation_source})", title_justify="left"
    )
    for column in ("output", "max abs error", "mean abs error", "mean error / std", "top-1 agreement"):
        accuracy.add_column(column, justify="left" if column == "output" else "right")
    for out in gate.outputs:
        interval = gate.agreement_interval(out)
        agreement = (
            "-"
            if interval is None
            else f"{out.top1_agreement:.2%} (95% CI {interval[0]:.1%}-{interval[1]:.1%})"
        )
        accuracy.add_row(
            out.name,
            f"{out.max_abs_error:.3g}",
            f"{out.mean_abs_error:.3g}",
            f"{out.normalized_mean_error:.3g}",
            agreement,
        )
    console.print(accuracy)
    verdict = "[green]passed[/green]" if gate.passed else "[red]FAILED[/red]"
    bounds = f"bound {gate.max_accuracy_drop:g}"
    if gate.max_abs_error is not None:
        bounds += f"; max abs error {gate.worst_abs_error:.4g}, bound {gate.max_abs_error:g}"
    console.print(f"accuracy drop {gate.drop:.4g} ({bounds}): {verdict}")
    if gate.generated:
        intervals = [
            f"'{out.name}' top-1 agreement {out.top1_agreement:.1%}, 95% CI {low:.1%} to {high:.1%}"
            for out in gate.outputs
            if out.top1_agreement is not None
            for low, high in [gate.agreement_interval(out) or (0.0, 1.0)]
        ]
        console.print(
            f"note: judged on {gate.samples} generated inputs, not real data"
            f"{' (' + '; '.join(intervals) + ')' if intervals else ''}: a changed decision on random noise "
            "says little about real inputs. Give --validation (or --calibration) FILE.npz, or convert with "
            "--samples so that the version keeps real rows (samples.npz)"
        )
    if report.sensitivity:
        layers = Table(title="layers by quantization cost, each quantized alone", title_justify="left")
        for column in ("layer", "op", "accuracy drop", "max abs error"):
            layers.add_column(column, justify="left" if column in ("layer", "op") else "right")
        for cost in report.sensitivity:
            kept = " (kept FP32)" if cost["node"] in report.fp32_layers else ""
            layers.add_row(
                f"{cost['node']}{kept}",
                cost["op_type"],
                f"{cost['drop']:.4g}",
                f"{cost['max_abs_error']:.3g}",
            )
        console.print(layers)
    if report.nodes_converted:
        nodes = ", ".join(f"{op} {count}" for op, count in report.nodes_converted.items())
        console.print(f"nodes converted: {nodes}")
    if report.reduce_range is not None:
        console.print(f"reduce_range={report.reduce_range}: {report.reduce_range_reason}")
    if report.ort_vs_onnx_max_abs_error is not None:
        console.print(f".ort vs its ONNX: max abs difference {report.ort_vs_onnx_max_abs_error:.3g}")
    for entry in report.int8_io:
        console.print(
            f"{entry['kind']} '{entry['name']}' in {entry['dtype']}: scale {entry['scale']:.6g}, zero point "
            f"{entry['zero_point']} (real value = (q - zero_point) * scale)"
        )
    for note in report.notes:
        console.print(f"note: {note}")
