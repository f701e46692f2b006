"""The conversion report: what :func:`~modelport.converters.convert` returns and ``conversion.json`` holds;
and :func:`json_text`, how every report file (``conversion.json``, ``quantization.json``) is written."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .tensor_specs import TensorSpec, oip_datatype

__all__ = ["ConversionReport", "OutputError", "json_text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputError:
    """Framework vs ONNX Runtime for one output at one batch size.

    ``max_rel_error`` is over the elements whose reference magnitude exceeds ``atol`` (0 if there are none);
    ``passed`` is numpy.allclose's rule: ``|onnx - ref| <= atol + rtol * |ref|`` everywhere.
    """

    output: str
    batch_size: int
    max_abs_error: float
    max_rel_error: float
    passed: bool


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "nan": JSON has no such numbers, and strict readers refuse Infinity
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(item) for item in value]
    return value


def json_text(document: dict[str, Any]) -> str:
    """``document`` as the text of a report file: indented strict JSON ending in a newline, with a float that
    is not finite written as its string (``"inf"``)."""
    return json.dumps(_strict(document), indent=2, allow_nan=False) + "\n"


def _spec_json(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": oip_datatype(spec.dtype), "shape": list(spec.dims)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversionReport:
    """Everything about one conversion. Paths point at the published files in the repository."""

    name: str
    version: int
    repository: Path
    model_path: Path
    config_path: Path
    config_created: bool
    report_path: Path
    source: str
    source_kind: str
    source_sha256: str
    source_bytes: int
    framework: str
    framework_version: str
    converter: str
    converter_version: str
    onnx_version: str
    onnxruntime_version: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int
    samples: str
    atol: float
    rtol: float
    errors: tuple[OutputError, ...]
    onnx_bytes: int
    seconds: dict[str, float]
    created: str
    notes: tuple[str, ...] = ()

    @property
    def max_abs_error(self) -> float:
        """The largest absolute error over all outputs and batch sizes."""
        return max((error.max_abs_error for error in self.errors), default=0.0)

    @property
    def max_rel_error(self) -> float:
        """The largest relative error over all outputs and batch sizes."""
        return max((error.max_rel_error for error in self.errors), default=0.0)

    def to_json(self) -> dict[str, Any]:
        """The ``conversion.json`` document (paths relative to the model's folder)."""
        return {
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "source": {
                "path": self.source,
                "kind": self.source_kind,
                "sha256": self.source_sha256,
                "bytes": self.source_bytes,
            },
            "framework": {"name": self.framework, "version": self.framework_version},
            "converter": {"name": self.converter, "version": self.converter_version},
            "onnx": {
                "version": self.onnx_version,
                "opset": self.opset,
                "onnxruntime": self.onnxruntime_version,
            },
            "signature": {
                "max_batch_size": self.max_batch_size,
                "inputs": [_spec_json(spec) for spec in self.inputs],
                "outputs": [_spec_json(spec) for spec in self.outputs],
            },
            "verification": {
                "samples": self.samples,
                "atol": self.atol,
                "rtol": self.rtol,
                "max_abs_error": self.max_abs_error,
                "max_rel_error": self.max_rel_error,
                "outputs": [
                    {
                        "output": e.output,
                        "batch_size": e.batch_size,
                        "max_abs_error": e.max_abs_error,
                        "max_rel_error": e.max_rel_error,
                        "passed": e.passed,
                    }
                    for e in self.errors
                ],
            },
            "sizes": {"source_bytes": self.source_bytes, "onnx_bytes": self.onnx_bytes},
            "seconds": self.seconds,
            "notes": list(self.notes),
        }
