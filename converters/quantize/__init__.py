"""The quantized mobile export: INT8/FP16 ONNX and ONNX Runtime's ``.ort`` format, gated by an accuracy check.

``api`` (``quantize_model``), ``cli`` (``modelport quantize`` and ``export-mobile``), ``sample_choice``
(which samples calibrate and validate; the samples themselves are ``converters.samples``), ``int8`` (ONNX
Runtime's quantizer), ``gate`` and ``measure`` (accuracy and speed against FP32), ``report``, ``mobile`` and
``minify`` (the ``.ort`` file and its reduced-operator config), ``cpu`` (the INT8 instructions this CPU has),
``repository`` (writing the results beside the model).
"""

from .api import Mode, QuantizeOptions, QuantizeResult, quantize_model
from .gate import AccuracyReport, OutputAccuracy
from .report import QuantizationReport

# The library face of the export; the CLI commands are loaded by their module path (``quantize.cli``). Its
# errors are :class:`~modelport.converters.errors.QuantizeError`, a ``ConversionError``. onnxruntime is
# imported only when a function runs.
__all__ = [
    "AccuracyReport",
    "Mode",
    "OutputAccuracy",
    "QuantizationReport",
    "QuantizeOptions",
    "QuantizeResult",
    "quantize_model",
]
