"""The metrics port's application: prometheus_client's own exposition, served from the event loop.

The listener is an ASGI app that ``app.py`` serves on uvicorn under the same connection limits as the other
HTTP listeners (header/URL sizes, read timeouts, the connection cap): a thread per connection, as
prometheus_client's own server spends, let slow clients exhaust threads and descriptors. The exposition is
still the library's WSGI app (Prometheus text by default, OpenMetrics when ``Accept`` asks for
``application/openmetrics-text``, gzip when accepted, ``?name[]=`` filters, 405 for methods but GET and
OPTIONS), called on one thread of its own: a scrape renders every series and reads worker processes with
psutil, and the live series are read back from the event loop while it waits (``live_metrics``), so it must
not run on the loop. One thread also means concurrent scrapes queue instead of taking every core.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app

__all__ = ["MetricsApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class MetricsApp:
    """ASGI app serving ``registry`` at every path (Prometheus scrapes ``/metrics``); :meth:`close` after."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._wsgi = make_wsgi_app(registry)
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="metrics-scrape")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        environ = {
            "REQUEST_METHOD": scope["method"],
            "PATH_INFO": scope["path"],
            "QUERY_STRING": scope["query_string"].decode("latin-1"),
            "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
            **{
                "HTTP_" + name.decode("latin-1").upper().replace("-", "_"): value.decode("latin-1")
                for name, value in scope["headers"]
            },
        }
        loop = asyncio.get_running_loop()
        status, headers, body = await loop.run_in_executor(self._thread, self._render, environ)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", b"%d" % len(body))]
                + [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in headers
                    if name.lower() != "content-length"
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _render(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """Run the WSGI app (on the scrape thread): status code, headers, the whole body."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], _exc_info: Any = None) -> None:
            started[:] = [int(status.split(" ", 1)[0]), headers]

        body = b"".join(self._wsgi(environ, start_response))
        return started[0], started[1], body

    def close(self) -> None:
        """Let the scrape thread end (a scrape in progress finishes first)."""
        self._thread.shutdown(wait=False)
