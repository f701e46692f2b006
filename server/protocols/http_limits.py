"""Limits of every HTTP listener (REST, management, metrics): sizes, read timeouts and a connection cap.

uvicorn's httptools protocol buffers a request's headers without bound and has no header or body read
timeout, so one slow client (slowloris) holds a socket forever. :func:`limited_protocol` returns a subclass
of it that adds, per connection:

- **size limits**: a request line longer than ``max_url_bytes`` gets 414, headers over ``max_header_bytes``
  (counted as they arrive, so a single endless header is refused too) get 431;
- **header timeout**: the request line and headers must arrive within ``header_timeout`` seconds of the
  request's first byte (of the connection's opening, for its first request), else 408;
- **body timeout**: the body must arrive within ``body_timeout`` seconds plus one second per
  ``body_min_rate`` bytes received (Apache's ``RequestReadTimeout body=...,MinRate=...``), so a dripped body
  is cut off as surely as a stalled one (408);
- **keep-alive timeout**: a connection idle between requests is closed after ``keep_alive_timeout``;
- **a cap** (:class:`ConnectionBudget`, shared by the listeners it is given to): a connection beyond it
  closes the longest-idle connection, else the one that has been sending its request the longest, else it is
  refused with 503. A connection whose request is being answered (an inference in flight) is never closed.

Deadlines are checked by one sweep a second (quicker for timeouts under 4 s), not by timers re-armed on
every read, and a request's state changes are stamped with the sweep's clock (:attr:`ConnectionBudget.now`,
read once a sweep), so the request path only moves a connection between two dicts. At shutdown a
connection that has not yet sent a whole request is closed at once: the drain waits for inferences, not for
clients that are still sending.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = ["ConnectionBudget", "HttpLimits", "descriptor_budget", "limited_protocol"]

_REASONS = {
    408: "the request did not arrive in time",
    414: "the request line (URL) is too long",
    431: "the request headers are too large",
    503: "too many open connections",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """What each HTTP connection may take (sizes in bytes, times in seconds, rate in bytes per second)."""

    max_header_bytes: int
    max_url_bytes: int
    header_timeout: float
    body_timeout: float
    body_min_rate: float
    keep_alive_timeout: float

    @property
    def sweep_interval(self) -> float:
        """How often deadlines are checked: a timeout is honoured within a quarter of itself, or 1 s."""
        shortest = min(self.header_timeout, self.body_timeout, self.keep_alive_timeout)
        return max(0.01, min(1.0, shortest / 4))


def descriptor_budget(requested: dict[str, int], *, reserve: int = 128) -> dict[str, int]:
    """``requested`` connection caps, scaled down together so that they and ``reserve`` descriptors (worker
    pipes, model files, the listeners) fit this process's open-file limit. At least 1 each."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    total = sum(requested.values())
    available = max(len(requested), soft - max(reserve, soft // 8))
    if soft == resource.RLIM_INFINITY or total <= available:
        return dict(requested)
    return {name: max(1, cap * available // total) for name, cap in requested.items()}


class _Refused(Exception):
    """Raised from a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(_REASONS[status])
        self.status = status


class ConnectionBudget:
    """At most ``limit`` open connections over every listener sharing this budget, with their deadlines.

    Connections are in at most one of three insertion-ordered tables (oldest first): idle between requests,
    reading headers, reading a body. A connection in none is busy (its request is being answered).
    """

    def __init__(self, limit: int, limits: HttpLimits) -> None:
        self.limit = limit
        self.limits = limits
        self._open: set[LimitedHttpToolsProtocol] = set()
        self._idle: dict[LimitedHttpToolsProtocol, float] = {}
        self._headers: dict[LimitedHttpToolsProtocol, float] = {}
        self._body: dict[LimitedHttpToolsProtocol, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self.now = 0.0  # the loop's time at the last sweep or admission: a deadline is a sweep late at most

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, connection: LimitedHttpToolsProtocol) -> bool:
        """Count a new connection, closing the least useful one if the cap is reached; False = refuse it."""
        if len(self._open) >= self.limit:
            for table in (self._idle, self._headers, self._body):
                if table:
                    victim = next(iter(table))
                    self.forget(victim)
                    victim.transport.close()
                    break
            else:
                return False
        self._open.add(connection)
        self.now = connection.loop.time()
        self._headers[connection] = self.now
        if self._sweeper is None and not self._closed:
            self._schedule(connection.loop)
        return True

    def forget(self, connection: LimitedHttpToolsProtocol) -> None:
        """The connection is closed (or about to be): it counts no more."""
        self._open.discard(connection)
        self._idle.pop(connection, None)
        self._headers.pop(connection, None)
        self._body.pop(connection, None)

    def request_begins(self, connection: LimitedHttpToolsProtocol) -> None:
        """First byte of a request on a connection idle until now: its header clock starts."""
        if self._idle.pop(connection, None) is not None:
            self._headers[connection] = self.now

    def headers_done(self, connection: LimitedHttpToolsProtocol) -> None:
        if self._headers.pop(connection, None) is not None:
            self._body[connection] = self.now

    def body_done(self, connection: LimitedHttpToolsProtocol, answered: bool) -> None:
        """The whole request is in; ``answered``: its response was already sent (then it is idle now)."""
        self._body.pop(connection, None)
        if answered:
            self._idle[connection] = self.now

    def answered(self, connection: LimitedHttpToolsProtocol) -> None:
        """A response is complete: the connection is idle unless its request is still arriving."""
        if connection in self._open and connection not in self._body and connection not in self._headers:
            self._idle[connection] = self.now

    def receiving(self, connection: LimitedHttpToolsProtocol) -> bool:
        """Whether the connection has not sent a whole request yet (nothing of it is being answered)."""
        return connection in self._headers or connection in self._body

    def close(self) -> None:
        """Stop sweeping (the listeners are closed)."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeper = loop.call_later(self.limits.sweep_interval, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = self.now = loop.time()
        limits = self.limits
        expired: list[tuple[LimitedHttpToolsProtocol, int | None]] = []
        # The idle and header tables are in deadline order: stop at the first one still in time.
        for connection, since in self._idle.items():
            if now - since < limits.keep_alive_timeout:
                break
            expired.append((connection, None))
        for connection, since in self._headers.items():
            if now - since < limits.header_timeout:
                break
            expired.append((connection, 408))
        for connection, since in self._body.items():
            allowed = limits.body_timeout + connection.body_bytes / limits.body_min_rate
            if now - since >= allowed:
                expired.append((connection, 408))
        for connection, status in expired:
            self.forget(connection)
            connection.close_with(status)
        self._sweeper = None
        if self._open and not self._closed:
            self._schedule(loop)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a :class:`ConnectionBudget` (set by :func:`limited_protocol`)."""

    budget: ConnectionBudget

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
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
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


def limited_protocol(budget: ConnectionBudget) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (``http=``) for a listener under ``budget``."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"budget": budget})
