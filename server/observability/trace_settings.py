"""Triton's trace settings (``/v2[/models/M]/trace/setting``, gRPC ``TraceSetting``) and the sampling they
decide: which requests are traced. Pure Python: nothing here imports OpenTelemetry.

Keys, as Triton's OpenTelemetry mode has them: ``trace_level`` (a list: ``["OFF"]`` or ``["TIMESTAMPS"]``),
``trace_rate`` (one request in N is traced), ``trace_count`` (traces left; ``-1`` = no limit; each trace
taken counts it down, and ``0`` stops tracing), ``log_frequency`` (kept and reported for clients that set it:
it governs trace *files*, and spans here leave by OTLP as they finish) and ``trace_mode``
(``opentelemetry``, the only one). ``trace_file`` is refused (spans are exported by OTLP, never written to a
file the client names) and so is ``TENSORS`` (spans carry timings, not tensor contents).

A model's settings override the global ones key by key; a key set to nothing (REST ``null``, gRPC an empty
value list) goes back to the global value. Each scope (the global one, each model with settings of its own)
counts its own requests for the rate and its own traces for the count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..errors import InvalidInput, Unsupported

__all__ = ["LEVELS", "TraceSettings", "TraceUpdate"]

LEVELS = ("OFF", "TIMESTAMPS")
_MODE = "opentelemetry"
_KEYS = ("trace_level", "trace_rate", "trace_count", "log_frequency", "trace_mode", "trace_file")
_MAX_UINT32 = 2**32 - 1
_MAX_INT32 = 2**31 - 1

# A key's new value as an adapter decodes it: its strings, or None to clear a model's own value.
TraceUpdate = Mapping[str, Sequence[str] | None]


@dataclass(slots=True)
class _Values:
    """One scope's settings; None = not set here (a model scope: the global value applies)."""

    level: str | None = None
    rate: int | None = None
    count: int | None = None
    log_frequency: int | None = None


@dataclass(slots=True)
class _Scope:
    values: _Values = field(default_factory=_Values)
    seen: int = 0  # requests counted for the rate


class TraceSettings:
    """The global settings and every model's own, and which request is traced.

    ``exporting``: the server exports spans (``--trace-endpoint``); without it the level is OFF and cannot
    be raised. :attr:`on` is False while no scope can trace, so the request path costs one attribute read.
    """

    def __init__(self, *, exporting: bool, rate: int = 1000, count: int = -1) -> None:
        self._exporting = exporting
        level = "TIMESTAMPS" if exporting else "OFF"
        self._global = _Scope(_Values(level=level, rate=rate, count=count, log_frequency=0))
        self._models: dict[str, _Scope] = {}
        self.on = exporting

    def get(self, model: str = "") -> dict[str, str | list[str]]:
        """The settings in force for ``model`` (``""``: the global ones), as Triton reports them."""
        values = self._effective(model)
        return {
            "trace_level": [values.level or "OFF"],
            "trace_rate": str(values.rate),
            "trace_count": str(values.count),
            "log_frequency": str(values.log_frequency),
            "trace_mode": _MODE,
        }

    def update(self, model: str, update: TraceUpdate) -> dict[str, str | list[str]]:
        """Apply ``update`` to ``model``'s settings (``""``: the global ones) and return them as :meth:`get`
        does. Nothing changes unless every key is valid: :class:`InvalidInput` names the key and what it
        allows, :class:`Unsupported` refuses ``trace_file``, ``TENSORS`` and raising the level without an
        exporter."""
        scope = self._global if not model else self._models.get(model, _Scope())
        values = replace(scope.values)
        for key, given in update.items():
            _apply(values, key, given, global_scope=not model)
        if values.level not in (None, "OFF") and not self._exporting:
            raise Unsupported(
                "trace_level: tracing needs an OTLP endpoint to export spans to: start the server with "
                "--trace-endpoint URL (e.g. http://collector:4318/v1/traces)"
            )
        scope.values = values
        if model:
            self._models[model] = scope
            if values == _Values():  # every key cleared: the model follows the global settings again
                del self._models[model]
        self.on = self._exporting and any(
            self._effective(name).level == "TIMESTAMPS" for name in ("", *self._models)
        )
        return self.get(model)

    def sample(self, model: str) -> bool:
        """Whether this request to ``model`` is traced: its scope's level is TIMESTAMPS, this is its
        ``trace_rate``-th request, and its count is not spent (taking a trace counts it down)."""
        scope = self._models.get(model, self._global)
        values = self._effective(model)
        if values.level != "TIMESTAMPS" or values.count == 0:
            return False
        scope.seen += 1
        assert values.rate is not None  # the global scope sets every key
        if scope.seen % values.rate:
            return False
        if values.count is not None and values.count > 0:
            owner = scope if scope.values.count is not None else self._global
            owner.values.count = values.count - 1
        return True

    def _effective(self, model: str) -> _Values:
        own = self._models.get(model)
        base = self._global.values
        if own is None:
            return base
        mine = own.values
        return _Values(
            level=mine.level if mine.level is not None else base.level,
            rate=mine.rate if mine.rate is not None else base.rate,
            count=mine.count if mine.count is not None else base.count,
            log_frequency=mine.log_frequency if mine.log_frequency is not None else base.log_frequency,
        )


def _apply(values: _Values, key: str, given: Sequence[str] | None, *, global_scope: bool) -> None:
    """Set (or, ``given`` None or empty, clear) one key of ``values``."""
    if key not in _KEYS:
        raise InvalidInput(f"unknown trace setting '{key}'; the settings are: {', '.join(_KEYS)}")
    if key == "trace_file":
        raise Unsupported(
            "trace_file: modelport does not write trace files; spans are exported by OTLP to --trace-endpoint"
        )
    if not given:
        if global_scope:
            raise InvalidInput(
                f"{key}: a global setting cannot be cleared (only a model's, to follow the global one); "
                "give a value"
            )
        _set(values, key, None)
        return
    if key == "trace_level":
        _set(values, key, _level(given))
        return
    if len(given) != 1:
        raise InvalidInput(f"{key}: expected one value, got {len(given)}")
    text = given[0]
    if key == "trace_mode":
        if text != _MODE:
            raise InvalidInput(f"trace_mode: '{text}' is not supported; the one mode is '{_MODE}'")
        return
    low, high, what = {
        "trace_rate": (1, _MAX_UINT32, "one request in N is traced"),
        "trace_count": (-1, _MAX_INT32, "traces left; -1 = no limit"),
        "log_frequency": (0, _MAX_UINT32, "traces per file (no effect with OTLP)"),
    }[key]
    try:
        number = int(text.strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise InvalidInput(f"{key}: '{text}' is not an integer in [{low}, {high}] ({what})")
    _set(values, key, number)


def _level(given: Sequence[str]) -> str:
    levels = [text.upper() for text in given]
    if "TENSORS" in levels:
        raise Unsupported(
            "trace_level: TENSORS is not supported (spans carry timings, not tensor contents); use TIMESTAMPS"
        )
    for level in levels:
        if level not in LEVELS:
            raise InvalidInput(f"trace_level: '{level}' is not a level; allowed: {', '.join(LEVELS)}")
    if "OFF" in levels and len(levels) > 1:
        raise InvalidInput("trace_level: OFF must be the only level given")
    return levels[0]


def _set(values: _Values, key: str, value: str | int | None) -> None:
    setattr(values, _FIELDS[key], value)


_FIELDS = {
    "trace_level": "level",
    "trace_rate": "rate",
    "trace_count": "count",
    "log_frequency": "log_frequency",
}
