"""How the server logs: one line per record on stderr, as text for people or JSON for machines.

:func:`configure_logging` is called once by ``serve_cli`` before the server starts. Records are formatted in
the thread that logs them and written by a background thread, so a slow log consumer (a full pipe, a stalled
container runtime) never blocks the event loop.

Text: ``2026-11-29T09:05:00.123Z INFO modelport.access: request_id=... model=...``.
JSON (``--log-format json``): one object per line with ``timestamp``, ``level``, ``logger``, ``message``, the
fields a record carries in ``extra`` (the access log's ``request_id``, ``model``, ...) and ``exc_info`` when a
traceback is attached.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
from typing import TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from ..settings import LogFormat

__all__ = ["configure_logging", "make_formatter"]

_writer: _BackgroundWriter | None = None

# Only the warnings of uvicorn's loggers pass: its access log would repeat ours (and log every health probe),
# and its INFO lines ("Started server process", "Shutting down", ...) come once per listener (REST, metrics,
# management), where the server's own "ready", "shutting down" and "stopped" lines say it once.
_QUIET_LOGGERS = ("uvicorn.access", "uvicorn.error")
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


class _BackgroundWriter(logging.Handler):
    """Formats a record in the thread that logs it and hands the line to a daemon thread that writes it.

    Cheaper than ``QueueHandler``/``QueueListener`` (no copy of the record, no second handler chain), and the
    writing thread drains every queued line before one flush.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_forever, name="modelport-log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.put(self.format(record))
        except Exception:
            self.handleError(record)

    def _write_forever(self) -> None:
        while (line := self._lines.get()) is not None:
            try:
                self._stream.write(line + "\n")
                while not self._lines.empty() and (line := self._lines.get()) is not None:
                    self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # the stream is gone (closed pipe at exit): drop the line
                pass
            if line is None:
                return

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._lines.put(None)
        self._thread.join(timeout=5)
        super().close()


def configure_logging(*, log_format: LogFormat, level: str, stream: TextIO | None = None) -> None:
    """Route every logger of the process to ``stream`` (default stderr) in ``log_format`` at ``level``.

    Replaces the root logger's handlers, so calling it again reconfigures instead of doubling lines.
    """
    global _writer  # noqa: PLW0603 -- one writer per process, replaced on reconfiguration
    _flush()
    _writer = _BackgroundWriter(stream if stream is not None else sys.stderr)
    _writer.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_writer)
    root.setLevel(level.upper())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    atexit.unregister(_flush)
    atexit.register(_flush)


def _flush() -> None:
    global _writer  # noqa: PLW0603 -- closing drains the queue and ends the writer thread
    if _writer is not None:
        logging.getLogger().removeHandler(_writer)
        _writer.close()
        _writer = None
