"""What an ONNX Runtime exception means, decided in one place: for loading a model, and for running a batch.

ONNX Runtime's Python binding raises one exception class per status code (``InvalidArgument``, ``Fail``,
``NoSuchFile``, ...), all from its compiled module; they are told apart here by class name, so this module
needs no import of ONNX Runtime and the server's side can use it too. Its messages start with
``[ONNXRuntimeError] : <code> : <NAME> :``, which is noise for a client and is dropped.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["RunFailureKind", "load_failure", "ort_message", "run_failure"]

RunFailureKind = Literal["invalid", "internal"]

# Status classes that mean "this input does not suit the model": a client error, not the server's.
_INVALID_INPUT = frozenset({"InvalidArgument"})
# Status classes that mean "ONNX Runtime cannot build a session of this file".
_CANNOT_LOAD = frozenset({"InvalidGraph", "Fail", "NotImplemented", "InvalidArgument", "RuntimeException"})


def ort_message(error: BaseException) -> str:
    """The exception's text without ONNX Runtime's ``[ONNXRuntimeError] : n : NAME :`` prefix."""
    text = str(error).strip()
    if text.startswith("[ONNXRuntimeError]"):
        parts = text.split(" : ", 3)
        text = parts[3] if len(parts) == 4 else text.removeprefix("[ONNXRuntimeError] : ")
    return text.strip()


def run_failure(error: BaseException) -> tuple[RunFailureKind, str]:
    """How a failed ``session.run`` is reported: ``invalid`` (the client's input) or ``internal``, and the
    message (one line of ONNX Runtime's own words, no traceback)."""
    kind: RunFailureKind = "invalid" if type(error).__name__ in _INVALID_INPUT else "internal"
    return kind, ort_message(error) or type(error).__name__


def load_failure(error: BaseException, what: str) -> str:
    """A one-line explanation of why a session could not be built, prefixed by ``what`` (e.g. the file)."""
    kind = type(error).__name__
    text = ort_message(error)
    if kind == "InvalidProtobuf":
        return f"{what}: not a valid ONNX model (protobuf parsing failed); re-export or re-copy the file"
    if kind == "NoSuchFile":
        return f"{what}: file not found"
    if kind in _CANNOT_LOAD:
        return f"{what}: ONNX Runtime cannot load it: {text}"
    return f"{what}: {kind}: {text}"
