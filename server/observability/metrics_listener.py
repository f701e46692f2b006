"""The metrics port: prometheus_client's own threaded HTTP server on the server's registry.

Why a thread and not a second ASGI server in the event loop: a scrape (rendering every series, reading worker
processes with psutil) then never runs on the loop that serves inference, and ``/metrics`` still answers when
that loop is overloaded or stuck, which is when an operator needs it most. The exposition is the library's:
Prometheus text by default, OpenMetrics when the ``Accept`` header asks for ``application/openmetrics-text``,
gzip when accepted, and ``?name[]=`` filters. Every path but ``/favicon.ico`` serves the metrics; Prometheus
scrapes ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

__all__ = ["MetricsListener"]

_log = logging.getLogger(__name__)


class MetricsListener:
    """Serves ``registry`` on ``host:port`` (port 0: ephemeral, see :attr:`port`) until :meth:`stop`."""

    def __init__(self, registry: CollectorRegistry, *, host: str, port: int) -> None:
        self._registry = registry
        self._host = host
        self._requested_port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port; only valid after :meth:`start`."""
        if self._server is None:
            raise RuntimeError("the metrics listener is not started")
        return int(self._server.server_port)

    def start(self) -> int:
        """Bind and start serving in a daemon thread; returns the bound port. Raises ``OSError`` if taken."""
        self._server, self._thread = start_http_server(
            self._requested_port, addr=self._host, registry=self._registry
        )
        _log.info("metrics listening on http://%s:%d/metrics", self._host, self.port)
        return self.port

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
