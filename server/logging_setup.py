"""How the server logs: one line per record on stderr, as text for people or JSON for machines.

:func:`configure_logging` is called once by ``serve_cli`` before the server starts. Records are formatted in
the thread that logs them and written by a background thread (a :class:`logging.handlers.QueueListener`), so a
slow log consumer (a full pipe, a stalled container runtime) never blocks the event loop.

Text: ``2026-11-29T09:05:00.123Z INFO modelport.access: request_id=... model=...``.
JSON (``--log-format json``): one object per line with ``timestamp``, ``level``, ``logger``, ``message``, the
fields a record carries in ``extra`` (the access log's ``request_id``, ``model``, ...) and ``exc_info`` when a
traceback is attached.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import time
from typing import TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from .settings import LogFormat

__all__ = ["configure_logging", "make_formatter"]

_listener: logging.handlers.QueueListener | None = None

# uvicorn's own access log would repeat ours (and log every health probe): only its warnings pass.
_QUIET_LOGGERS = ("uvicorn.access",)
# Extra record fields meant for terminals (uvicorn's ANSI-coloured copy of the message): not JSON fields.
_TERMINAL_ONLY = ("color_message",)


class _UtcTextFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def make_formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of ``log_format`` (``text`` or ``json``); timestamps are UTC, ISO 8601."""
    if log_format == "json":
        formatter: logging.Formatter = OrjsonFormatter(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, *_TERMINAL_ONLY],
            timestamp=True,
        )
        return formatter
    return _UtcTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def configure_logging(*, log_format: LogFormat, level: str, stream: TextIO | None = None) -> None:
    """Route every logger of the process to ``stream`` (default stderr) in ``log_format`` at ``level``.

    Replaces the root logger's handlers, so calling it again reconfigures instead of doubling lines.
    """
    global _listener  # noqa: PLW0603 -- one listener per process, replaced on reconfiguration
    if _listener is not None:
        _listener.stop()
    writer = logging.StreamHandler(stream if stream is not None else sys.stderr)
    writer.setFormatter(logging.Formatter("%(message)s"))  # the line is already formatted
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    enqueue = logging.handlers.QueueHandler(records)
    enqueue.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(enqueue)
    root.setLevel(level.upper())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    _listener = logging.handlers.QueueListener(records, writer)
    _listener.start()
    atexit.unregister(_flush)
    atexit.register(_flush)


def _flush() -> None:
    global _listener  # noqa: PLW0603 -- stopping drains the queue and ends the writer thread
    if _listener is not None:
        _listener.stop()
        _listener = None
