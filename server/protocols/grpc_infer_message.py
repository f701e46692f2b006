"""A received ``ModelInferRequest``, split cheaply on the event loop: names and id now, tensors later.

grpc calls the request deserializer on the event loop. Parsing a whole message there costs a copy of every
``raw_input_contents`` entry (and another on each access of the field) and, for typed contents, one
GIL-holding C call per message: 80 ms for 60 MiB of raw data, seconds for millions of ``bytes_contents``.
:func:`split_infer_request` instead walks the message's top-level fields only (a handful, each a varint and a
length), keeps each raw entry as a *view* of the received bytes (no copy), reads ``model_name``,
``model_version`` and ``id``, and leaves the rest (inputs, outputs, parameters) as bytes parsed by
:meth:`InferMessage.parse`, which the servicer calls after the model has been found, in a thread for a large
message. A message with many top-level fields (more than :data:`_MAX_FIELDS`, never sent by a real client)
is parsed whole by protobuf instead, so the walk stays bounded; so is a small message (the common case).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from .generated import grpc_service_pb2 as pb
from .grpc_status import Undecodable
from .large_requests import INLINE_BYTES

__all__ = ["InferMessage", "lenient_infer_deserializer", "split_infer_request"]

# Field numbers of inference.ModelInferRequest (proto/grpc_service.proto).
_MODEL_NAME, _MODEL_VERSION, _ID, _RAW = 1, 2, 3, 7
_LENGTH_DELIMITED = 2
_MAX_FIELDS = 4096


@dataclass(frozen=True, slots=True)
class InferMessage:
    """One ``ModelInferRequest`` as received: its names and id, its raw tensors as views, the rest unparsed.

    ``size`` is the message's byte count (what decides whether decoding leaves the event loop).
    """

    model_name: str
    model_version: str
    id: str
    raw: Sequence[bytes | memoryview]
    rest: bytes
    size: int
    parsed: pb.ModelInferRequest | None = None  # a small message is parsed whole at once

    def parse(self) -> pb.ModelInferRequest:
        """The message (its ``raw_input_contents`` are :attr:`raw`); raises ``DecodeError``."""
        if self.parsed is not None:
            return self.parsed
        return pb.ModelInferRequest.FromString(self.rest)


def split_infer_request(data: bytes) -> InferMessage:
    """Split a serialized ``ModelInferRequest``; raises ``DecodeError`` where its top level is malformed.

    A message under :data:`large_requests.INLINE_BYTES` is parsed whole by protobuf at once instead (the
    common small request: one C call is cheaper than the walk, and its copies are small).
    """
    if len(data) < INLINE_BYTES:
        message = pb.ModelInferRequest.FromString(data)
        return InferMessage(
            model_name=message.model_name,
            model_version=message.model_version,
            id=message.id,
            raw=message.raw_input_contents,
            rest=b"",
            size=len(data),
            parsed=message,
        )
    view = memoryview(data)
    size = len(data)
    names: dict[int, str] = {}
    raw: list[memoryview] = []
    rest: list[bytes] = []
    offset = 0
    fields = 0
    while offset < size:
        fields += 1
        if fields > _MAX_FIELDS:
            return _whole(data)
        start = offset
        key, offset = _varint(data, offset)
        number, wire_type = key >> 3, key & 7
        if wire_type == _LENGTH_DELIMITED:
            length, offset = _varint(data, offset)
            end = offset + length
            if end > size:
                raise DecodeError("a field runs past the end of the message")
            if number == _RAW:
                raw.append(view[offset:end])
            elif number in (_MODEL_NAME, _MODEL_VERSION, _ID):
                try:
                    names[number] = data[offset:end].decode()  # the last occurrence wins, as in protobuf
                except UnicodeDecodeError:
                    raise DecodeError("a string field is not valid UTF-8") from None
            else:
                rest.append(data[start:end])
            offset = end
        else:  # not a field of the top level of this message: protobuf decides (unknown field or error)
            return _whole(data)
    return InferMessage(
        model_name=names.get(_MODEL_NAME, ""),
        model_version=names.get(_MODEL_VERSION, ""),
        id=names.get(_ID, ""),
        raw=tuple(raw),
        rest=b"".join(rest),
        size=size,
    )


def lenient_infer_deserializer(data: bytes) -> InferMessage | Undecodable:
    """The request deserializer of ModelInfer and ModelStreamInfer: never raises (see
    :func:`grpc_status.lenient_deserializer`)."""
    try:
        return split_infer_request(data)
    except DecodeError as error:
        return Undecodable(pb.ModelInferRequest.DESCRIPTOR.full_name, str(error) or "cannot parse the bytes")


def _whole(data: bytes) -> InferMessage:
    """The fallback: protobuf parses everything (raw entries become copies)."""
    message = pb.ModelInferRequest.FromString(data)
    raw = tuple(memoryview(entry) for entry in message.raw_input_contents)
    del message.raw_input_contents[:]
    return InferMessage(
        model_name=message.model_name,
        model_version=message.model_version,
        id=message.id,
        raw=raw,
        rest=message.SerializeToString(),
        size=len(data),
    )


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    """The base-128 varint at ``offset`` and the offset after it; at most 10 bytes, as protobuf allows."""
    value = 0
    for shift in range(0, 70, 7):
        if offset >= len(data):
            raise DecodeError("the message ends inside a varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
    raise DecodeError("a varint is longer than 10 bytes")
