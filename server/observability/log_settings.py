"""Triton's log settings (``/v2/logging``, gRPC ``LogSettings``): the server's log levels and format, changed
while it runs.

Keys: ``log_info``, ``log_warning``, ``log_error`` (each level on or off, independently, as in Triton),
``log_verbose_level`` (0 = no verbose lines; 1 or more = DEBUG records, Python logging having one verbose
level), ``log_format`` (``default`` and ``ISO8601``: the text lines, whose timestamps are ISO 8601 UTC
already; ``json``: one JSON object per line, as ``--log-format json``) and ``log_file`` (reported as ``""``:
the server logs to stderr, the container's log; any other value is refused).

The levels become the root logger's level (the least severe one on) and a filter on the root handlers that
drops a level switched off below it; the format replaces the root handlers' formatter.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..errors import InvalidInput, Unsupported
from ..settings import LogFormat, LogLevel
from .logging_setup import make_formatter

__all__ = ["FORMATS", "LogSettings"]

FORMATS = ("default", "ISO8601", "json")
_SWITCHES = {"log_info": logging.INFO, "log_warning": logging.WARNING, "log_error": logging.ERROR}
_KEYS = (*_SWITCHES, "log_verbose_level", "log_format", "log_file")
_MAX_UINT32 = 2**32 - 1

LogValue = bool | int | str


@dataclass(frozen=True, slots=True)
class _State:
    info: bool
    warning: bool
    error: bool
    verbose: int
    format: str


class _LevelFilter(logging.Filter):
    """Drops the records of a level switched off (one more severe than the root level lets through)."""

    def __init__(self) -> None:
        super().__init__("")
        self.off: frozenset[int] = frozenset()

    def filter(self, record: logging.LogRecord) -> bool:
        level = min(record.levelno, logging.ERROR)  # CRITICAL counts as error, as Triton has no such level
        return level not in self.off


class LogSettings:
    """The process's log settings, starting from ``--log-level`` and ``--log-format``."""

    def __init__(self, *, level: LogLevel, log_format: LogFormat) -> None:
        rank = ("debug", "info", "warning", "error", "critical").index(level)
        self._state = _State(
            info=rank <= 1,
            warning=rank <= 2,
            error=rank <= 3,
            verbose=1 if rank == 0 else 0,
            format="json" if log_format == "json" else "default",
        )
        self._filter = _LevelFilter()

    def get(self) -> dict[str, LogValue]:
        """The settings now, as Triton reports them."""
        state = self._state
        return {
            "log_file": "",
            "log_info": state.info,
            "log_warning": state.warning,
            "log_error": state.error,
            "log_verbose_level": state.verbose,
            "log_format": state.format,
        }

    def update(self, update: Mapping[str, LogValue]) -> dict[str, LogValue]:
        """Apply ``update`` (every key checked before any takes effect) and return :meth:`get`.
        :class:`InvalidInput` names the key and what it allows; :class:`Unsupported` refuses a log file."""
        state = self._state
        for key, value in update.items():
            state = _apply(state, key, value)
        self._state = state
        self._take_effect()
        return self.get()

    def _take_effect(self) -> None:
        state = self._state
        on = {logging.INFO: state.info, logging.WARNING: state.warning, logging.ERROR: state.error}
        lowest = logging.DEBUG if state.verbose else min((lv for lv, is_on in on.items() if is_on), default=0)
        root = logging.getLogger()
        root.setLevel(lowest or logging.CRITICAL + 1)
        self._filter.off = frozenset(level for level, is_on in on.items() if not is_on)
        formatter = make_formatter("json" if state.format == "json" else "text")
        for handler in root.handlers:
            if self._filter not in handler.filters:
                handler.addFilter(self._filter)
            handler.setFormatter(formatter)


def _apply(state: _State, key: str, value: LogValue) -> _State:
    if key not in _KEYS:
        raise InvalidInput(f"unknown log setting '{key}'; the settings are: {', '.join(_KEYS)}")
    if key == "log_file":
        if value == "":
            return state
        raise Unsupported(
            "log_file: modelport logs to stderr (the container's log) and cannot switch to a file; "
            "give '' or leave log_file out"
        )
    if key in _SWITCHES:
        if not isinstance(value, bool):
            raise InvalidInput(f"{key}: expected true or false, got {value!r}")
        if key == "log_info":
            return replace(state, info=value)
        if key == "log_warning":
            return replace(state, warning=value)
        return replace(state, error=value)
    if key == "log_verbose_level":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_UINT32:
            raise InvalidInput(f"log_verbose_level: expected an integer >= 0, got {value!r}")
        return replace(state, verbose=value)
    if value not in FORMATS:
        raise InvalidInput(f"log_format: {value!r} is not a format; allowed: {', '.join(FORMATS)}")
    return replace(state, format=value)
