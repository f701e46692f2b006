"""Framework -> ONNX converters, numeric verification, and the quantized mobile export.

``convert(source, *, repository, name, ...)`` turns a torch.export program, a TorchScript module, a
``package.module:factory``, a Keras file or a TensorFlow SavedModel into a verified ``model.onnx`` in a
model repository and returns a :class:`ConversionReport`. torch and TensorFlow are imported lazily, only by
the converter that needs them. ``quantize_model(source, work, QuantizeOptions(mode=...))`` makes the INT8/FP16
or ``.ort`` export of a converted model, gated on accuracy. Every error is a :class:`ConversionError`
(:class:`QuantizeError` for the export). This package never imports ``modelport.server``.
"""

from typing import TYPE_CHECKING

from .api import DEFAULT_MAX_BATCH_SIZE, convert
from .errors import (
    ConversionError,
    CorruptSource,
    ExportFailed,
    InvalidOption,
    InvalidSamples,
    MissingInputSpec,
    OutputMismatch,
    QuantizeError,
    RepositoryConflict,
    SourceNotFound,
    UnknownFormat,
    UnsupportedOperator,
    VerificationFailed,
)
from .options import (
    FactoryOptions,
    KerasOptions,
    SavedModelOptions,
    SourceOptions,
    TorchExportOptions,
    TorchScriptOptions,
    VerifyOptions,
)
from .report import ConversionReport, OutputError
from .tensor_specs import TensorSpec, parse_input_spec

if TYPE_CHECKING:
    from .quantize import QuantizationReport, QuantizeOptions, QuantizeResult, quantize_model

# The quantized export is loaded on first use: a conversion alone need not pay for its modules (~25 ms).
_QUANTIZE_NAMES = frozenset({"QuantizationReport", "QuantizeOptions", "QuantizeResult", "quantize_model"})


def __getattr__(name: str) -> object:
    """The quantize names, imported from :mod:`.quantize` when first asked for (PEP 562)."""
    if name in _QUANTIZE_NAMES:
        from . import quantize

        return getattr(quantize, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "ConversionError",
    "ConversionReport",
    "CorruptSource",
    "ExportFailed",
    "FactoryOptions",
    "InvalidOption",
    "InvalidSamples",
    "KerasOptions",
    "MissingInputSpec",
    "OutputError",
    "OutputMismatch",
    "QuantizationReport",
    "QuantizeError",
    "QuantizeOptions",
    "QuantizeResult",
    "RepositoryConflict",
    "SavedModelOptions",
    "SourceNotFound",
    "SourceOptions",
    "TensorSpec",
    "TorchExportOptions",
    "TorchScriptOptions",
    "UnknownFormat",
    "UnsupportedOperator",
    "VerificationFailed",
    "VerifyOptions",
    "convert",
    "parse_input_spec",
    "quantize_model",
]
