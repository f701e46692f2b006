"""One transport-neutral exception tree for everything the server refuses or fails at.

Each adapter owns exactly one table to its status codes: REST and gRPC map :class:`ErrorCode`, the management
API maps the exception class (its statuses follow TorchServe's, not Triton's).
Messages are written for the client: they name the model, the tensor or the key, and say what was expected.
"""

from __future__ import annotations

import enum

__all__ = [
    "AlreadyExists",
    "DeadlineExceeded",
    "ErrorCode",
    "InvalidInput",
    "ModelLoadFailed",
    "ModelNotFound",
    "ModelNotReady",
    "ModelportError",
    "PayloadTooLarge",
    "PermissionDenied",
    "QueueFull",
    "ServerUnavailable",
    "Unauthenticated",
    "Unsupported",
]


class ErrorCode(enum.Enum):
    """Triton's status codes, plus the two a serving queue needs (deadline, payload size) and the two of a
    management operation (no or a wrong token; not allowed from where the client is)."""

    INVALID_ARG = "INVALID_ARG"
    NOT_FOUND = "NOT_FOUND"
    UNAVAILABLE = "UNAVAILABLE"
    UNSUPPORTED = "UNSUPPORTED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    INTERNAL = "INTERNAL"


class ModelportError(Exception):
    """Base of every error the server reports to a client."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ModelportError):
    """The request is malformed or does not match the model's signature."""

    code = ErrorCode.INVALID_ARG


class ModelNotFound(ModelportError):
    """Unknown model or version. Triton answers this with INVALID_ARG (HTTP 400), and so do we."""

    code = ErrorCode.INVALID_ARG


class ModelNotReady(ModelportError):
    """The model exists but no version is ready (loading, failed, unloading)."""

    code = ErrorCode.UNAVAILABLE


class ModelLoadFailed(InvalidInput):
    """An explicit (re)load that did not end with every version it asked for serving (a version failed to
    load, or the config is refused); as in Triton, an invalid-argument error (HTTP 400) with the reasons."""


class QueueFull(ModelportError):
    """The model's queue is at its bound; the request was refused at once."""

    code = ErrorCode.UNAVAILABLE


class ServerUnavailable(ModelportError):
    """The server is shutting down or cannot take work."""

    code = ErrorCode.UNAVAILABLE


class DeadlineExceeded(ModelportError):
    """The request's timeout expired before it ran."""

    code = ErrorCode.DEADLINE_EXCEEDED


class PayloadTooLarge(ModelportError):
    """The body or a declared tensor exceeds a configured bound."""

    code = ErrorCode.RESOURCE_EXHAUSTED


class AlreadyExists(ModelportError):
    """The request would create what exists already (registering a model that is loaded)."""

    code = ErrorCode.ALREADY_EXISTS


class Unsupported(ModelportError):
    """The request asks for something this server does not implement."""

    code = ErrorCode.UNSUPPORTED


class Unauthenticated(ModelportError):
    """A management operation without the management token it needs, or with a wrong one."""

    code = ErrorCode.UNAUTHENTICATED


class PermissionDenied(ModelportError):
    """A management operation from a client that may not make it (not loopback, and no token configured)."""

    code = ErrorCode.PERMISSION_DENIED
