"""INT8 with ONNX Runtime's quantizer: pre-processing, then dynamic or calibrated static quantization.

Activations are uint8 and weights int8 (U8S8, ONNX Runtime's x86 path); ``reduce_range`` is the caller's
decision (see :mod:`.cpu`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ..errors import QuantizeError
from ..samples import SampleSet

__all__ = ["CALIBRATION_METHODS", "preprocess", "quantize_int8"]

CALIBRATION_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_CALIBRATION_BATCH = 16


def preprocess(source: Path, target: Path) -> str:
    """Run ``quant_pre_process`` (symbolic and ONNX shape inference, graph optimization) from ``source`` to
    ``target``; return what was done, for the report. Symbolic shape inference fails on some graphs: then it
    is skipped, as ONNX Runtime advises, and the report says so."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(target))
    except Exception as first:  # onnxruntime raises anything from AssertionError to its own Fail
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


def quantize_int8(
    source: Path,
    target: Path,
    *,
    mode: Literal["dynamic", "static"],
    calibration: SampleSet | None,
    quant_format: Literal["qdq", "qoperator"],
    per_channel: bool,
    reduce_range: bool,
    calibration_method: str = "minmax",
    nodes_to_quantize: Sequence[str] | None = None,
    nodes_to_exclude: Sequence[str] = (),
) -> None:
    """Quantize the pre-processed ``source`` into ``target``; static mode needs ``calibration``.

    ``nodes_to_quantize`` (``None``: all) and ``nodes_to_exclude`` select nodes by name (ONNX Runtime's own).
    """
    from onnxruntime import quantization as q

    if calibration_method not in CALIBRATION_METHODS:
        raise QuantizeError(f"calibration method must be one of {sorted(CALIBRATION_METHODS)}")
    if mode == "static" and calibration is None:
        raise QuantizeError("static quantization needs calibration samples")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
            if mode == "dynamic":
                q.quantize_dynamic(
                    str(source),
                    str(target),
                    per_channel=per_channel,
                    reduce_range=reduce_range,
                    weight_type=q.QuantType.QInt8,
                    nodes_to_quantize=list(nodes_to_quantize or []),
                    nodes_to_exclude=list(nodes_to_exclude),
                )
                return
            assert calibration is not None  # checked above
            q.quantize_static(
                str(source),
                str(target),
                _Reader(calibration),
                quant_format=q.QuantFormat.QDQ if quant_format == "qdq" else q.QuantFormat.QOperator,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=q.QuantType.QUInt8,
                weight_type=q.QuantType.QInt8,
                calibrate_method=q.CalibrationMethod[CALIBRATION_METHODS[calibration_method]],
                nodes_to_quantize=list(nodes_to_quantize or []),
                nodes_to_exclude=list(nodes_to_exclude),
            )
    except QuantizeError:
        raise
    except Exception as error:  # onnxruntime's quantizer raises anything from ValueError to Fail
        raise QuantizeError(f"{source}: ONNX Runtime could not quantize it ({mode}): {error}") from error
