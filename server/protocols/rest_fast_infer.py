"""The REST fast path: ``POST /v2/models/{m}[/versions/{v}]/infer`` answered by the HTTP protocol itself,
past ASGI and Starlette.

:class:`http_protocol.LimitedHttpToolsProtocol` asks :meth:`FastInfer.match` once a request's headers are
parsed; for an infer route it puts a :class:`FastInferCycle` where uvicorn would put its ASGI
request-response cycle. The cycle collects the body (under the same body limit; the connection budget's read
timeouts still apply), hands it to :class:`rest_infer.InferRoute` (the work the ASGI route does too: decode,
one data-plane call, encode, the one error table) and writes the response on the transport. It keeps
uvicorn's contract where the protocol reads it: pipelined requests are answered in order (the cycle waits in
uvicorn's pipeline), keep-alive and ``Connection: close``, ``Expect: 100-continue``, the Date header,
graceful shutdown (its task is one of the server's tasks; cancelled at the drain timeout, it answers 503).

Anything else goes to the ASGI application, including an infer path the fast path does not take as sent
(percent-encoded, absolute-form, a name the name rule refuses): the slow route answers those the same way.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Protocol

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.server import ServerState

from ..dataplane import DataPlane
from ..errors import InvalidInput, ModelportError
from ..names import check_path_names
from .large_requests import after_large_response
from .rest_infer import JSON, InferRoute, body_too_large, declared_too_large, error_answer

__all__ = ["FastInfer", "FastInferCycle", "Host"]

# The path as sent (no percent-encoding: such a path goes the slow way), an optional query (ignored, as the
# slow route ignores it).
_ROUTE = re.compile(rb"/v2/models/([^/?#%]+)(?:/versions/([^/?#%]+))?/infer(?:\?[^#]*)?")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_JOIN_BELOW = 1 << 16  # a smaller body is written with its headers in one buffer; a larger one after them


class Host(Protocol):
    """What a cycle uses of its connection's protocol (``http_protocol.LimitedHttpToolsProtocol``, which
    subclasses uvicorn's): the request's URL and headers, the transport and its flow control."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    flow: FlowControl
    server_state: ServerState
    url: bytes
    headers: list[tuple[bytes, bytes]]
    client: tuple[str, int] | None
    access_log: bool
    access_logger: logging.Logger

    def on_response_complete(self) -> None:
        """The response is written: start the next pipelined request, or wait for one."""


class FastInfer:
    """The fast path of one REST listener, over ``dataplane`` with bodies of at most ``limit`` bytes."""

    def __init__(self, dataplane: DataPlane, *, limit: int) -> None:
        self.route = InferRoute(dataplane, limit=limit)
        self.served = 0  # responses written by the fast path (how a test sees which path answered)

    def match(self, url: bytes) -> tuple[str, str] | None:
        """The model name and version (``""``: the latest) of an infer URL the fast path takes, else None."""
        found = _ROUTE.fullmatch(url)
        if found is None:
            return None
        name, version = found.groups()
        try:
            check_path_names(name, version)
        except InvalidInput:
            return None  # the slow route refuses it, in the words it uses for every route
        return name.decode("ascii"), version.decode("ascii") if version else ""


class _Wake:
    """What uvicorn calls ``cycle.message_event``: set when body arrives, ends or the connection goes; a
    future only while the cycle waits (most bodies are complete before the cycle's task first runs)."""

    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, loop: asyncio.AbstractEventLoop) -> None:
        self._waiter = loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class FastInferCycle:
    """One infer request on the fast path, with the attributes of uvicorn's ``RequestResponseCycle`` that
    the protocol reads and writes (``response_started``, ``response_complete``, ``disconnected``,
    ``keep_alive``, ``more_body``, ``message_event``) and its ``run_asgi`` (the ASGI app is not called)."""

    __slots__ = (
        "_chunks",
        "_expect_continue",
        "_fast",
        "_headers",
        "_model",
        "_protocol",
        "_refusal",
        "_size",
        "_version",
        "disconnected",
        "keep_alive",
        "message_event",
        "more_body",
        "response_complete",
        "response_started",
    )

    def __init__(
        self,
        protocol: Host,
        fast: FastInfer,
        target: tuple[str, str],
        *,
        keep_alive: bool,
        expect_continue: bool,
    ) -> None:
        self._protocol = protocol
        self._fast = fast
        self._model, self._version = target
        # Lower-case names (uvicorn lower-cases them); of a repeated header the last, as the ASGI route reads.
        self._headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in protocol.headers}
        self._expect_continue = expect_continue
        self._chunks: list[bytes] = []
        self._size = 0
        self._refusal: ModelportError | None = declared_too_large(
            self._headers.get("content-length"), fast.route.limit
        )
        self.response_started = self.response_complete = self.disconnected = False
        self.keep_alive = keep_alive
        self.more_body = True
        self.message_event = _Wake()

    def add_body(self, chunk: bytes) -> None:
        """A piece of the body (the protocol's ``on_body``): kept, or the request refused once too large."""
        if self._refusal is not None or self.response_complete:
            return
        self._size += len(chunk)
        if self._size > self._fast.route.limit:
            self._refusal = body_too_large(self._fast.route.limit)
            self._chunks = []
            self.message_event.set()
            return
        self._chunks.append(chunk)

    async def run_asgi(self, _app: Any) -> None:
        """Answer the request (uvicorn's name: the protocol starts this as it starts an ASGI cycle)."""
        try:
            body = await self._body()
            if body is None:
                return  # as the ASGI route: a body cut short is not a request, and nothing can be answered
            content, headers = await self._fast.route.answer(self._headers, body, self._model, self._version)
            status = 200
        except (Exception, asyncio.CancelledError) as error:
            status, content = error_answer(error)
            headers = {"content-type": JSON}
        await self._respond(status, headers, content)

    async def _body(self) -> bytes | None:
        """The whole body once it is in (None if the connection went first); the refusal of one too large."""
        protocol = self._protocol
        if self._expect_continue and self._refusal is None and not protocol.transport.is_closing():
            protocol.transport.write(_CONTINUE)
        while self.more_body and self._refusal is None and not self.disconnected:
            protocol.flow.resume_reading()
            await self.message_event.wait(protocol.loop)
        if self.disconnected:
            return None
        if self._refusal is not None:
            raise self._fast.route.reject(self._refusal, self._model, self._version)
        chunks, self._chunks = self._chunks, []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _respond(self, status: int, headers: dict[str, str], content: bytes) -> None:
        protocol = self._protocol
        if protocol.flow.write_paused and not self.disconnected:
            await protocol.flow.drain()
        if self.disconnected:
            return
        self.response_started = True
        if protocol.access_log:  # uvicorn's access line, when its logger has handlers
            client = "{}:{}".format(*protocol.client) if protocol.client else ""
            protocol.access_logger.info(
                '%s - "POST %s HTTP/1.1" %d', client, protocol.url.decode("latin-1"), status
            )
        parts = [STATUS_LINE[status]]
        for name, value in protocol.server_state.default_headers:
            parts += (name, b": ", value, b"\r\n")
        for text_name, text_value in headers.items():
            parts.append(f"{text_name}: {text_value}\r\n".encode("latin-1"))
        parts.append(b"content-length: %d\r\n" % len(content))
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        transport = protocol.transport
        if len(content) < _JOIN_BELOW:
            parts.append(content)
            transport.write(b"".join(parts))
        else:
            transport.write(b"".join(parts))
            transport.write(content)
        self.response_complete = True
        self._fast.served += 1
        if not self.keep_alive:
            transport.close()
        protocol.on_response_complete()
        after_large_response(len(content), protocol.flow.drain)
