"""Tracing of inference requests: W3C trace context in, OpenTelemetry spans out by OTLP/HTTP.

:class:`Tracing` is what the data plane holds and the adapters ask. Without ``--trace-endpoint`` it never
imports OpenTelemetry and :attr:`Tracing.on` stays False: an adapter reads that one attribute per request
and does nothing else. With an endpoint, :mod:`.otel_spans` builds a tracer whose ``BatchSpanProcessor``
exports from its own thread (off the event loop); :meth:`Tracing.close` flushes and stops it when the server
stops.

One traced request gives four spans, built when it ends from the timings the batcher and the instance
report with the result (no clock is read inside the batcher or a worker for tracing): ``infer`` (the
request, a child of the client's ``traceparent`` when one came), and under it ``queue`` (waiting for a batch
and a free instance), ``compute`` (the batch in the instance: input copy, the ONNX Runtime run, output copy)
and ``encode`` (the response's wire encoding). Attributes: model name, version, batch size, protocol.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from ..inference import Protocol as WireProtocol
from .trace_settings import TraceSettings, TraceUpdate

if TYPE_CHECKING:
    from ..executor import ExecutionResult

__all__ = ["RequestTrace", "Tracing"]


class RequestTrace(Protocol):
    """One traced request, from its adapter's first look at it to its encoded answer."""

    def ran(self, version: str, result: ExecutionResult) -> None:
        """The executor answered (now): where the request's time went, and in which version."""

    def encoding(self) -> None:
        """The response's encoding starts now."""

    def end(self, error: BaseException | None) -> None:
        """The request is answered (``error``: it failed): its spans are built and handed to the exporter."""


class _Exporter(Protocol):
    def begin(
        self, model: str, protocol: WireProtocol, traceparent: str | None, tracestate: str | None
    ) -> RequestTrace: ...

    def close(self) -> None: ...


class Tracing:
    """The server's trace settings and, with an ``endpoint``, the exporter behind them."""

    def __init__(self, *, endpoint: str | None, rate: int = 1000, service_version: str = "") -> None:
        self.settings = TraceSettings(exporting=endpoint is not None, rate=rate)
        self._exporter: _Exporter | None = None
        # Whether any request can be traced now (an exporter, and some scope's level TIMESTAMPS): a plain
        # attribute, the one thing the request path reads when tracing is off.
        self.on = self.settings.on
        if endpoint is not None:
            from .otel_spans import OtlpExporter  # only a server that exports imports OpenTelemetry

            self._exporter = OtlpExporter(endpoint, service_version=service_version)

    def begin(
        self, model: str, protocol: WireProtocol, traceparent: str | None, tracestate: str | None
    ) -> RequestTrace | None:
        """The trace of a request to ``model`` if the settings sample it, else None. Call only when
        :attr:`on`; ``traceparent``/``tracestate``: the client's W3C headers (an invalid one starts a new
        trace, as the W3C recommendation says)."""
        if self._exporter is None or not self.settings.sample(model):
            return None
        return self._exporter.begin(model, protocol, traceparent, tracestate)

    def update(self, model: str, update: TraceUpdate) -> dict[str, str | list[str]]:
        """See :meth:`TraceSettings.update`."""
        try:
            return self.settings.update(model, update)
        finally:
            self.on = self.settings.on

    async def close(self) -> None:
        """Export what is still queued and stop the exporter (in a thread: it may wait on the network)."""
        if self._exporter is not None:
            exporter, self._exporter = self._exporter, None
            await asyncio.to_thread(exporter.close)
