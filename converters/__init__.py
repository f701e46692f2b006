"""Framework -> ONNX converters, numeric verification, and the quantized mobile export.

``convert(source, *, repository, name, ...)`` turns a torch.export program, a TorchScript module, a
``package.module:factory``, a Keras file or a TensorFlow SavedModel into a verified ``model.onnx`` in a
model repository and returns a :class:`ConversionReport`. torch and TensorFlow are imported lazily, only by
the converter that needs them. This package never imports ``modelport.server``.
"""

from .api import DEFAULT_MAX_BATCH_SIZE, convert
from .errors import (
    ConversionError,
    CorruptSource,
    ExportFailed,
    InvalidOption,
    MissingInputSpec,
    OutputMismatch,
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

__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "ConversionError",
    "ConversionReport",
    "CorruptSource",
    "ExportFailed",
    "FactoryOptions",
    "InvalidOption",
    "KerasOptions",
    "MissingInputSpec",
    "OutputError",
    "OutputMismatch",
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
]
