"""The OpenTelemetry side of :mod:`.tracing`: a tracer exporting by OTLP/HTTP, and one request's spans.

Imported only by a server started with ``--trace-endpoint``. The tracer provider is the server's own, not
the process-global one, so nothing else in the process starts exporting through it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..inference import Protocol as WireProtocol

if TYPE_CHECKING:
    from ..executor import ExecutionResult

__all__ = ["OtlpExporter", "SpanTimeline", "traces_url"]

_PROPAGATOR = TraceContextTextMapPropagator()


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of ``endpoint``: as given when it has a path, else with ``/v1/traces``
    (a collector's base address, ``http://collector:4318``, is what operators usually have)."""
    if urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


class OtlpExporter:
    """Spans of traced requests, batched and exported to ``endpoint`` from the SDK's own thread."""

    def __init__(self, endpoint: str, *, service_version: str) -> None:
        resource = Resource.create({"service.name": "modelport", "service.version": service_version})
        self._provider = TracerProvider(resource=resource)
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
        self._tracer = self._provider.get_tracer("modelport.server")

    def begin(
        self, model: str, protocol: WireProtocol, traceparent: str | None, tracestate: str | None
    ) -> SpanTimeline:
        carrier = {"traceparent": traceparent or "", "tracestate": tracestate or ""}
        parent = _PROPAGATOR.extract(carrier) if traceparent else None
        return SpanTimeline(self._tracer, parent, model, protocol)

    def close(self) -> None:
        self._provider.shutdown()  # the BatchSpanProcessor exports what it holds, then its thread ends


class SpanTimeline:
    """One request's instants (wall clock, ns); its spans are made at :meth:`end` with those times."""

    __slots__ = (
        "_encoding_ns",
        "_model",
        "_parent",
        "_protocol",
        "_ran_ns",
        "_result",
        "_start_ns",
        "_tracer",
        "_version",
    )

    def __init__(
        self, tracer: trace.Tracer, parent: Context | None, model: str, protocol: WireProtocol
    ) -> None:
        self._tracer = tracer
        self._parent = parent
        self._model = model
        self._protocol = protocol
        self._start_ns = time.time_ns()
        self._ran_ns = 0
        self._encoding_ns = 0
        self._version = ""
        self._result: ExecutionResult | None = None

    def ran(self, version: str, result: ExecutionResult) -> None:
        self._ran_ns = time.time_ns()
        self._version = version
        self._result = result

    def encoding(self) -> None:
        self._encoding_ns = time.time_ns()

    def end(self, error: BaseException | None) -> None:
        end_ns = time.time_ns()
        attributes: dict[str, str | int] = {"modelport.model.name": self._model}
        attributes["modelport.protocol"] = self._protocol
        result = self._result
        if result is not None:
            attributes["modelport.model.version"] = self._version
            attributes["modelport.batch_size"] = result.batch_size
        root = self._tracer.start_span(
            "infer",
            context=self._parent,
            kind=SpanKind.SERVER,
            start_time=self._start_ns,
            attributes=attributes,
        )
        if error is not None:
            root.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        inside = trace.set_span_in_context(root)
        # The children carry only what is their own: the model and version are the parent's (every
        # attribute is copied into each span and encoded again, the SDK's main cost per span).
        if result is not None:
            compute_ns = result.compute_input_ns + result.compute_infer_ns + result.compute_output_ns
            computed_ns = self._ran_ns
            queued_ns = max(self._start_ns, computed_ns - compute_ns - result.queue_ns)
            self._child("queue", inside, queued_ns, queued_ns + result.queue_ns, None)
            compute: dict[str, str | int] = {
                "modelport.batch_size": result.batch_size,
                "modelport.compute_input_ns": result.compute_input_ns,
                "modelport.compute_infer_ns": result.compute_infer_ns,
                "modelport.compute_output_ns": result.compute_output_ns,
            }
            self._child("compute", inside, computed_ns - compute_ns, computed_ns, compute)
        if self._encoding_ns:
            self._child("encode", inside, self._encoding_ns, end_ns, None)
        root.end(end_time=end_ns)

    def _child(
        self,
        name: str,
        parent: Context,
        start_ns: int,
        end_ns: int,
        attributes: dict[str, str | int] | None,
    ) -> None:
        span = self._tracer.start_span(name, context=parent, start_time=start_ns, attributes=attributes)
        span.end(end_time=end_ns)
