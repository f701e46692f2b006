"""How the gRPC adapter reports failure: the one ErrorCode -> StatusCode table and the wrapper every unary RPC
goes through (:func:`guarded`; :func:`unary` also refuses an undecodable request before its handler runs).

An error of :mod:`errors` becomes its status with the error's message. Anything else becomes INTERNAL with a
fresh request id; the traceback is logged under that id and never sent. A request whose bytes did not parse
(see :func:`lenient_deserializer`) is INVALID_ARGUMENT: grpc's own deserializer would answer UNKNOWN.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.message import DecodeError, Message

from ..errors import ErrorCode, InvalidInput, ModelportError, Unsupported
from ..observability.recording import internal_error

__all__ = [
    "GRPC_STATUS",
    "Unary",
    "Undecodable",
    "guarded",
    "lenient_deserializer",
    "unary",
    "unsupported",
]

logger = logging.getLogger(__name__)

# Triton's mapping (src/grpc/grpc_utils.cc), plus the two codes a serving queue needs.
GRPC_STATUS: Mapping[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARG: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.UNSUPPORTED: grpc.StatusCode.UNIMPLEMENTED,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
}

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
Unary = Callable[[Any, _Req, grpc.aio.ServicerContext], Awaitable[_Resp]]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands in for a request message whose bytes did not parse."""

    message_name: str
    reason: str

    def error(self) -> InvalidInput:
        return InvalidInput(
            f"the request is not a valid {self.message_name} protobuf message ({self.reason})"
        )


def lenient_deserializer(message_class: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    """A request deserializer that never raises: bytes that do not parse become an :class:`Undecodable`."""
    name = message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return message_class.FromString(data)
        except DecodeError as error:
            return Undecodable(name, str(error) or "cannot parse the bytes")

    return deserialize


def _fail(context: grpc.aio.ServicerContext, error: ModelportError) -> None:
    """Set the call's status from ``error``. Not ``context.abort()``: the AbortError it raises is kept in
    the call's state, a reference cycle through the handler's frames that holds the request message (a
    maximum-size message's tensors) until the garbage collector's next full pass."""
    context.set_code(GRPC_STATUS[error.code])
    context.set_details(error.message)


def unary(handler: Unary[_Req, _Resp]) -> Unary[_Req | Undecodable, _Resp]:
    """Wrap a unary RPC: refuse undecodable requests, map errors through :data:`GRPC_STATUS`."""

    @functools.wraps(handler)
    async def decoded(self: Any, request: _Req | Undecodable, context: grpc.aio.ServicerContext) -> _Resp:
        if isinstance(request, Undecodable):
            raise request.error()
        return await handler(self, request, context)

    return guarded(decoded)


def guarded(handler: Unary[_Req, _Resp]) -> Unary[_Req, _Resp]:
    """Wrap a unary RPC that handles an :class:`Undecodable` request itself: map errors through
    :data:`GRPC_STATUS`."""

    @functools.wraps(handler)
    async def rpc(self: Any, request: _Req, context: grpc.aio.ServicerContext) -> _Resp:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except ModelportError as error:
            _fail(context, error)
        except Exception as error:
            _fail(context, internal_error(logger, f"gRPC {handler.__name__}", error))
        return cast(_Resp, None)  # no message: grpc sends the status that _fail set

    return rpc


def unsupported(feature: str) -> Unary[Message, Message]:
    """An RPC that answers UNIMPLEMENTED, saying which feature modelport does not have."""

    async def rpc(self: Any, request: Message, context: grpc.aio.ServicerContext) -> Message:
        raise Unsupported(f"{feature} is not supported by modelport")

    return unary(rpc)
