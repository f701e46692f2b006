"""The HTTP/1.1 protocol of every HTTP listener: uvicorn's httptools protocol under the limits of
:mod:`http_limits` (sizes answered 431/414, timeouts 408, the connection cap 503), given to uvicorn as
``http=limited_protocol(budget)``.

It overrides only the parser callbacks that mark where a request is (headers, body, answered) and
uvicorn's keep-alive timer, which the budget's idle table replaces; everything else is uvicorn's. On the
REST listener (``limited_protocol(budget, fast_infer=...)``) an infer request is answered by the fast path
of :mod:`rest_fast_infer` in place of the ASGI application, under the same limits.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .http_limits import ConnectionBudget
from .rest_fast_infer import FastInfer, FastInferCycle

__all__ = ["LimitedHttpToolsProtocol", "limited_protocol"]

_REASONS = {
    408: "the request did not arrive in time",
    414: "the request line (URL) is too long",
    431: "the request headers are too large",
    503: "too many open connections",
}


class _Refused(Exception):
    """Raised from a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(_REASONS[status])
        self.status = status


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a :class:`ConnectionBudget` (set by :func:`limited_protocol`)."""

    budget: ConnectionBudget
    fast_infer: FastInfer | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body_bytes = 0
        self._header_bytes = 0  # bytes received since the current request's headers began
        self._in_headers = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.budget.admit(self):
            self.close_with(503)

    def connection_lost(self, exc: Exception | None) -> None:
        self.budget.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _Refused):
                self.close_with(error.__context__.status)
            else:
                self.logger.warning("Invalid HTTP request received.", exc_info=error)
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # no WebSocket route: answered like any request
        limits = self.budget.limits
        if self._in_headers and self._header_bytes > limits.max_header_bytes + limits.max_url_bytes:
            self.close_with(414 if len(getattr(self, "url", b"")) > limits.max_url_bytes else 431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.body_bytes = 0
        self.budget.request_begins(self)

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.budget.limits.max_url_bytes:
            raise _Refused(414)

    def on_headers_complete(self) -> None:
        limit = self.budget.limits.max_header_bytes
        # The headers are at most the bytes received since they began: only a large request adds them up.
        if self._header_bytes > limit and sum(len(n) + len(v) for n, v in self.headers) > limit:
            raise _Refused(431)
        self._in_headers = False
        self.budget.headers_done(self)
        fast = self.fast_infer
        # uvicorn's concurrency limit and root path are not used here; with either the ASGI path answers.
        if (
            fast is not None
            and self.parser.get_method() == b"POST"
            and not self.parser.should_upgrade()
            and self.limit_concurrency is None
            and not self.root_path
        ):
            target = fast.match(self.url)
            if target is not None:
                self._start_fast(fast, target)
                return
        super().on_headers_complete()

    def _start_fast(self, fast: FastInfer, target: tuple[str, str]) -> None:
        """What uvicorn's ``on_headers_complete`` does, with a :class:`FastInferCycle` for the ASGI cycle."""
        cycle = FastInferCycle(
            self,
            fast,
            target,
            keep_alive=self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive(),
            expect_continue=self.expect_100_continue,
        )
        existing = self.cycle
        # uvicorn types these as its own cycle; the fast cycle has every attribute they are read for.
        self.cycle = cycle  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, self.app)  # type: ignore[arg-type]
        else:  # pipelined: answered after the requests before it, as uvicorn queues its own
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        cycle: object = self.cycle  # uvicorn's cycle, or the fast path's (typed as uvicorn's)
        if type(cycle) is FastInferCycle:
            cycle.add_body(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_headers, self._header_bytes = True, 0
        self.budget.body_done(self, answered=self.cycle is not None and self.cycle.response_complete)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive timer replaced by the budget's idle table (no timer per response).
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.budget.answered(self)

    def shutdown(self) -> None:
        """Draining: a connection still sending its request is closed now; others as uvicorn does."""
        if self.budget.receiving(self):
            self.close_with(None)
        else:
            super().shutdown()

    def close_with(self, status: int | None) -> None:
        """Answer ``status`` (unless a response has begun, or None) and close the connection."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        # A response half written cannot be followed by another; any other state can take the refusal.
        if status is not None and (cycle is None or cycle.response_complete or not cycle.response_started):
            message = _REASONS[status].encode("ascii")
            self.transport.write(
                b"".join(
                    (
                        STATUS_LINE[status],
                        b"content-type: text/plain; charset=utf-8\r\n",
                        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(message),
                        message,
                    )
                )
            )
        if cycle is not None and not cycle.response_complete:
            # What connection_lost does, at once: the application reads a disconnect and writes nothing more.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def limited_protocol(
    budget: ConnectionBudget, *, fast_infer: FastInfer | None = None
) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (``http=``) for a listener under ``budget``; with ``fast_infer``
    (the REST listener's) infer requests take the fast path."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {"budget": budget, "fast_infer": fast_infer},
    )
