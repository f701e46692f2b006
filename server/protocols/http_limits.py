"""Limits of every HTTP listener (REST, management, metrics): sizes, read timeouts and a connection cap.

uvicorn's httptools protocol buffers a request's headers without bound and has no header or body read
timeout, so one slow client (slowloris) holds a socket forever. ``http_protocol.limited_protocol`` returns
a subclass of it that adds, per connection, what this module declares:

- **size limits**: a request line longer than ``max_url_bytes`` gets 414, headers over ``max_header_bytes``
  (counted as they arrive, so a single endless header is refused too) get 431;
- **header timeout**: the request line and headers must arrive within ``header_timeout`` seconds of the
  request's first byte (of the connection's opening, for its first request), else 408;
- **body timeout**: the body must arrive within ``body_timeout`` seconds plus one second per
  ``body_min_rate`` bytes received (Apache's ``RequestReadTimeout body=...,MinRate=...``), so a dripped body
  is cut off as surely as a stalled one (408);
- **keep-alive timeout**: a connection idle between requests is closed after ``keep_alive_timeout``;
- **a cap** (:class:`ConnectionBudget`, shared by the listeners it is given to): a connection beyond it
  closes the idlest connection (one stuck on its request for over a second, else the longest idle between
  requests, else the one sending its request the longest), or is refused with 503 when every connection has
  a request being answered: a connection with an inference in flight is never closed.

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
from typing import Protocol

__all__ = ["Connection", "ConnectionBudget", "HttpLimits", "descriptor_budget"]


class Connection(Protocol):
    """What the budget needs of a connection (``http_protocol.LimitedHttpToolsProtocol`` is one)."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    body_bytes: int  # of the request body being received

    def close_with(self, status: int | None) -> None:
        """Answer ``status`` (None: nothing) and close."""


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


# A request's headers that have not all arrived after this long are a slow client's, not a normal one's.
_SLOW_AFTER_S = 1.0


class ConnectionBudget:
    """At most ``limit`` open connections over every listener sharing this budget, with their deadlines.

    Connections are in at most one of three insertion-ordered tables (oldest first): idle between requests,
    reading headers, reading a body. A connection in none is busy (its request is being answered).
    """

    def __init__(self, limit: int, limits: HttpLimits) -> None:
        self.limit = limit
        self.limits = limits
        self._open: set[Connection] = set()
        self._idle: dict[Connection, float] = {}
        self._headers: dict[Connection, float] = {}
        self._body: dict[Connection, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self.now = 0.0  # the loop's time at the last sweep or admission: a deadline is a sweep late at most

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, connection: Connection) -> bool:
        """Count a new connection, closing the least useful one if the cap is reached; False = refuse it."""
        self.now = connection.loop.time()
        if len(self._open) >= self.limit:
            victim = self._victim()
            if victim is None:
                return False
            self.forget(victim)
            victim.transport.close()
        self._open.add(connection)
        self._headers[connection] = self.now
        if self._sweeper is None and not self._closed:
            self._schedule(connection.loop)
        return True

    def _victim(self) -> Connection | None:
        """The connection to close for a newcomer, or None (every one has a request being answered).

        The idlest first: one sending nothing useful, that is stuck on its headers for over a second (a
        client's headers take milliseconds) or on a body behind ``body_min_rate``; then the longest idle
        between requests (a well-behaved client's pooled connection, so only after the stuck ones); then
        the one sending its request the longest.
        """
        grace = _SLOW_AFTER_S
        if self._headers:
            connection, since = next(iter(self._headers.items()))
            if self.now - since > grace:
                return connection
        if self._body:
            connection, since = next(iter(self._body.items()))
            if connection.body_bytes < (self.now - since - grace) * self.limits.body_min_rate:
                return connection
        for table in (self._idle, self._headers, self._body):
            if table:
                return next(iter(table))
        return None

    def forget(self, connection: Connection) -> None:
        """The connection is closed (or about to be): it counts no more."""
        self._open.discard(connection)
        self._idle.pop(connection, None)
        self._headers.pop(connection, None)
        self._body.pop(connection, None)

    def request_begins(self, connection: Connection) -> None:
        """First byte of a request on a connection idle until now: its header clock starts."""
        if self._idle.pop(connection, None) is not None:
            self._headers[connection] = self.now

    def headers_done(self, connection: Connection) -> None:
        if self._headers.pop(connection, None) is not None:
            self._body[connection] = self.now

    def body_done(self, connection: Connection, answered: bool) -> None:
        """The whole request is in; ``answered``: its response was already sent (then it is idle now)."""
        self._body.pop(connection, None)
        if answered:
            self._idle[connection] = self.now

    def answered(self, connection: Connection) -> None:
        """A response is complete: the connection is idle unless its request is still arriving."""
        if connection in self._open and connection not in self._body and connection not in self._headers:
            self._idle[connection] = self.now

    def receiving(self, connection: Connection) -> bool:
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
        expired: list[tuple[Connection, int | None]] = []
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
