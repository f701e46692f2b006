"""What a conversion refuses or fails at, each with a message that names the file and says what to do.

Conversion (``modelport convert``) and the quantized export (``modelport quantize``, ``export-mobile``) share
this one hierarchy. The CLIs print ``str(error)`` on one line and exit non-zero; the traceback is shown only
with ``--verbose``.
Foreign exceptions (torch, TensorFlow, tf2onnx, onnx, ONNX Runtime) are translated where they occur.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ConversionError",
    "CorruptSource",
    "ExportFailed",
    "InvalidOption",
    "InvalidSamples",
    "MissingInputSpec",
    "OutputMismatch",
    "QuantizeError",
    "RepositoryConflict",
    "SourceNotFound",
    "UnknownFormat",
    "UnsupportedOperator",
    "VerificationFailed",
]


class ConversionError(Exception):
    """Base of every error a conversion reports; ``str()`` is the whole user-facing message."""

    exit_code: int = 1


class SourceNotFound(ConversionError):
    """The source file, directory or factory module does not exist."""


class UnknownFormat(ConversionError):
    """The source is not one of the formats the converters read."""


class CorruptSource(ConversionError):
    """The source has the right name but its framework cannot read it."""


class InvalidOption(ConversionError):
    """An option is malformed or contradicts the source (a bad ``--input``, an existing ``--version``)."""


class InvalidSamples(InvalidOption):
    """A samples ``.npz`` (parity check, calibration, validation) does not fit the model's inputs; the message
    names the file and the key."""


class MissingInputSpec(ConversionError):
    """The source carries no input signature and no ``--input`` was given."""


class ExportFailed(ConversionError):
    """The framework's exporter could not turn the model into a graph."""


class UnsupportedOperator(ConversionError):
    """The model uses an operator that has no ONNX translation."""

    def __init__(self, message: str, *, operator: str, layer: str) -> None:
        super().__init__(message)
        self.operator = operator
        self.layer = layer


class RepositoryConflict(ConversionError):
    """The target version already exists in the repository."""


class QuantizeError(ConversionError):
    """The quantization or mobile export of a converted model cannot go on (a missing model version, a
    quantizer failure, a config that would no longer describe the model)."""


@dataclass(frozen=True, slots=True)
class OutputMismatch:
    """One output at one batch size whose error exceeds the tolerance."""

    output: str
    batch_size: int
    max_abs_error: float
    max_rel_error: float
    atol: float
    rtol: float


class VerificationFailed(ConversionError):
    """ONNX Runtime's outputs differ from the framework's beyond the tolerance (or the graph is invalid)."""

    exit_code = 2

    def __init__(self, message: str, mismatches: Sequence[OutputMismatch] = ()) -> None:
        super().__init__(message)
        self.mismatches = tuple(mismatches)
