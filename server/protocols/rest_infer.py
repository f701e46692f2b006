"""The REST infer route's work, shared by both ways a request reaches it: the ASGI route of
:mod:`rest_api` and the HTTP protocol's fast path (:mod:`rest_fast_infer`). One body limit, one decode, one
data-plane call, one encode, and the one error table (:data:`HTTP_STATUS`, :func:`error_answer`), so the two
paths cannot answer differently.

A body is decoded in a thread when it is large, and a response encoded in a thread when its tensors are
(:func:`large_requests.decode_off_loop`): the event loop keeps answering health probes meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import zlib
from collections.abc import Mapping

import orjson
from starlette.requests import ClientDisconnect

from ..dataplane import DataPlane, Servable
from ..errors import ErrorCode, InvalidInput, ModelportError, PayloadTooLarge
from ..inference import InferRequest, InferResponse
from ..observability.recording import internal_error
from .large_requests import INLINE_BYTES, after_large_request, decode_off_loop
from .rest_codec import (
    OutputFormat,
    decode_infer_request,
    decode_raw_binary_request,
    decompress_body,
    encode_infer_response,
)

__all__ = [
    "HTTP_STATUS",
    "JSON",
    "InferRoute",
    "body_too_large",
    "declared_too_large",
    "error_answer",
    "error_body",
]

logger = logging.getLogger(__name__)

# Triton's mapping (docs/protocol/README.md) plus our two codes: payload size and deadline.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARG: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.UNSUPPORTED: 501,
    ErrorCode.ALREADY_EXISTS: 400,
    ErrorCode.DEADLINE_EXCEEDED: 504,
    ErrorCode.RESOURCE_EXHAUSTED: 413,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.INTERNAL: 500,
}
JSON = "application/json"
_BINARY = "application/octet-stream"
# A byte count in a header: ASCII digits only (str.isdigit() takes '²', which int() refuses), at most 19 of
# them (int64), so int() never meets a 4,300-digit number.
_BYTE_COUNT = re.compile(r"[0-9]{1,19}")
# A response whose tensors hold this many bytes is encoded (and compressed) in a thread.
_ENCODE_OFF_LOOP_FACTOR = 3  # JSON text of numbers takes ~2-3 bytes per tensor byte


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def error_answer(error: BaseException) -> tuple[int, bytes]:
    """The status and JSON body answering an exception: :class:`ModelportError` through the table, anything
    else a logged 500 with a request id. The one mapping of every REST route."""
    if isinstance(error, ModelportError):
        return HTTP_STATUS[error.code], error_body(error.message)
    if isinstance(error, asyncio.CancelledError):
        # uvicorn cancels requests still running when the drain timeout ends: say so to the client.
        return 503, error_body("the server shut down before this request finished (drain timeout)")
    if isinstance(error, ClientDisconnect):
        return 400, error_body("the client closed the connection before sending the whole body")
    return 500, error_body(internal_error(logger, "REST request", error).message)


def declared_too_large(declared: str | None, limit: int) -> PayloadTooLarge | None:
    """The refusal of a body whose Content-Length (``declared``) exceeds ``limit``, or None."""
    if declared is not None and _BYTE_COUNT.fullmatch(declared) and int(declared) > limit:
        return PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    return None


def body_too_large(limit: int) -> PayloadTooLarge:
    """The refusal of a body found, while it arrives, to exceed ``limit``."""
    return PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")


def _compress(body: bytes, accept: str) -> tuple[bytes, str | None]:
    accepted = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if "gzip" in accepted:
        compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return compressor.compress(body) + compressor.flush(), "gzip"
    if "deflate" in accepted:
        return zlib.compress(body, 1), "deflate"
    return body, None


def _encode(
    response: InferResponse, output_format: OutputFormat, accept: str | None
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers (lower-case names, Content-Length aside)."""
    content, json_length = encode_infer_response(response, output_format)
    headers = {"content-type": JSON if json_length is None else _BINARY}
    if json_length is not None:
        headers["inference-header-content-length"] = str(json_length)
    if accept:
        content, applied = _compress(content, accept)
        if applied:
            headers["content-encoding"] = applied
    return content, headers


class InferRoute:
    """``POST /v2/models/{m}[/versions/{v}]/infer`` over one data plane, with bodies of at most ``limit``
    bytes (Content-Encoding undone, that limit again)."""

    def __init__(self, dataplane: DataPlane, *, limit: int) -> None:
        self.dataplane = dataplane
        self.limit = limit
        # JSON values take >= 2 bytes each and at most 8 as tensor elements: this refuses only absurd shapes.
        self.max_tensor_bytes = 4 * limit

    def reject(self, error: ModelportError, model_name: str, model_version: str) -> ModelportError:
        """Record a request refused before it reached the data plane (a body too large, undecodable) and
        return ``error`` tagged with a request id, as :meth:`answer` raises it."""
        return self.dataplane.reject(
            error, model_name=model_name, model_version=model_version, request_id="", protocol="http"
        )

    async def answer(
        self, headers: Mapping[str, str], body: bytes, model_name: str, model_version: str
    ) -> tuple[bytes, dict[str, str]]:
        """One inference of the whole ``body`` (``headers``: lower-case names): the response body and its
        headers (Content-Length aside). Raises what :func:`error_answer` maps, every failure recorded once."""
        infer_request: InferRequest | None = None
        trace = None
        if self.dataplane.tracing.on:  # the one check a request pays while tracing is off
            trace = self.dataplane.tracing.begin(
                model_name, "http", headers.get("traceparent"), headers.get("tracestate")
            )
        try:
            try:
                infer_request, output_format, servable = await self._decode(
                    headers, body, model_name, model_version
                )
            except ModelportError as error:
                raise self.reject(error, model_name, model_version) from None
            response = await self.dataplane.infer(infer_request, servable=servable, trace=trace)
            size = sum(array.nbytes for array in response.outputs.values())
            if not output_format.binary_default:
                size *= _ENCODE_OFF_LOOP_FACTOR
            encode = functools.partial(_encode, response, output_format, headers.get("accept-encoding"))
            if trace is not None:
                trace.encoding()
            answer = await decode_off_loop(size, encode)
        except BaseException as error:
            if trace is not None:
                trace.end(error)
            raise
        else:
            if trace is not None:
                trace.end(None)
            return answer
        finally:
            if infer_request is not None:  # its tensors go to be freed (off the loop when large)
                after_large_request(len(body), infer_request.inputs)
                infer_request.inputs = {}
            else:
                after_large_request(len(body))

    async def _decode(
        self, headers: Mapping[str, str], body: bytes, model_name: str, model_version: str
    ) -> tuple[InferRequest, OutputFormat, Servable | None]:
        """The request, its output format, and the version it goes to if nothing was awaited since it was
        looked up (every step ran on the loop), else None (the data plane looks it up again)."""
        # An unknown model or version is refused before anything is decompressed or decoded.
        servable: Servable | None = self.dataplane.check_servable(model_name, model_version)
        if len(body) >= INLINE_BYTES:
            servable = None
        encoding = headers.get("content-encoding")
        if encoding:
            body = await decode_off_loop(
                len(body), functools.partial(decompress_body, body, encoding, limit=self.limit)
            )
            if len(body) >= INLINE_BYTES:
                servable = None
        header_length: int | None = None
        declared = headers.get("inference-header-content-length")
        if declared is not None:
            if not _BYTE_COUNT.fullmatch(declared.strip()):
                shown = declared if len(declared) <= 24 else declared[:21] + "..."
                raise InvalidInput(
                    f"Inference-Header-Content-Length {shown!r} is not a byte count: give the length of the "
                    "JSON header in ASCII digits"
                )
            header_length = int(declared)
        if header_length == 0:  # a raw binary request: the body is the one input's bytes
            spec, batching = self.dataplane.sole_input(model_name, model_version)
            decode_raw = functools.partial(
                decode_raw_binary_request,
                body,
                spec,
                batching=batching,
                model_name=model_name,
                model_version=model_version,
                max_bytes=self.max_tensor_bytes,
            )
            return (*await decode_off_loop(len(body), decode_raw), servable)
        decode = functools.partial(
            decode_infer_request,
            body,
            header_length,
            model_name=model_name,
            model_version=model_version,
            max_bytes=self.max_tensor_bytes,
        )
        return (*await decode_off_loop(len(body), decode), servable)
