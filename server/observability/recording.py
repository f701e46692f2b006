"""One finished inference request, recorded everywhere at once: statistics, metrics and access log.

The data plane calls :meth:`RequestRecorder.finish` exactly once per request, whatever happened (including a
request its adapter could not decode, through ``DataPlane.reject``). The same call feeds Triton's statistics
(``VersionStatistics``), the Prometheus counters and histograms, and the access log, so
``/v2/models/stats`` and ``/metrics`` always tell the same counts:

- ``inference_stats.success.count`` = ``modelport_requests_total{outcome="success"}`` of the version, summed
  over protocols; ``inference_stats.fail.count`` = the same with ``outcome!="success"``;
- ``inference_count`` = ``modelport_inferences_total``; ``queue.count`` and ``compute_*.count`` =
  ``modelport_queue_duration_seconds_count`` and ``modelport_compute_duration_seconds_count``.

A request that did not resolve to a served version has no statistics; its metrics carry ``version=""`` and,
when the model itself is unknown, ``model=""`` (client-chosen names never become label values).
"""

from __future__ import annotations

import copy
import logging
import time
from contextlib import AbstractContextManager

from ..errors import InvalidInput, ModelportError
from ..executor import ExecutionResult
from ..inference import Protocol
from .access_log import log_access, new_request_id
from .metrics import ServerMetrics, outcome_of
from .statistics import VersionStatistics

__all__ = ["MAX_REQUEST_ID", "RequestRecorder", "client_request_id", "internal_error", "tag_with_request_id"]

# A client's request id is echoed in every answer and error and written to the access log: bounded, and
# printable ASCII only (no newlines or escape sequences for the log, no header-breaking bytes).
MAX_REQUEST_ID = 128


def client_request_id(value: object) -> str:
    """The request id a client sent (JSON ``id``, gRPC ``id``), checked: a string of at most
    :data:`MAX_REQUEST_ID` printable ASCII characters, else :class:`InvalidInput`. The refusal does not echo
    the id (the error gets a generated one)."""
    if not isinstance(value, str):
        raise InvalidInput("request 'id' must be a string")
    if len(value) > MAX_REQUEST_ID or not value.isascii() or not value.isprintable():
        raise InvalidInput(
            f"request 'id' ({len(value)} characters) must be at most {MAX_REQUEST_ID} printable ASCII "
            "characters; send a shorter id, or none and the server makes one"
        )
    return value


def tag_with_request_id(error: ModelportError, request_id: str) -> ModelportError:
    """``error`` with ``(request id: ...)`` appended to the message the client gets, so its failure can be
    found in the log. A copy: the requests of one batch share the batch's error, each with its own id."""
    suffix = f" (request id: {request_id})"
    if error.message.endswith(suffix):
        return error
    tagged = copy.copy(error)
    tagged.message = error.message + suffix
    tagged.args = (tagged.message,)
    return tagged


def internal_error(
    log: logging.Logger, what: str, error: BaseException, *, request_id: str = ""
) -> ModelportError:
    """Log ``error``'s traceback as ``what`` failing, under ``request_id`` (a new id when empty), and return
    what the client is told: ``internal error; the server log has the details (request id: ...)``. The one
    way every adapter and the data plane report an unexpected exception."""
    request_id = request_id or new_request_id()
    log.error("%s failed unexpectedly (request id %s)", what, request_id, exc_info=error)
    return tag_with_request_id(ModelportError("internal error; the server log has the details"), request_id)


class RequestRecorder:
    """Records finished requests into ``metrics``, the versions' statistics and the access log.

    Call it on the event loop: the statistics and the per-request metrics it writes have that one writer and
    no lock."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def in_flight(self, model: str, version: str) -> AbstractContextManager[None]:
        """Counts the request in ``modelport_requests_in_flight`` while the block runs (on the event loop)."""
        return self.metrics.in_flight(model, version)

    def finish(
        self,
        *,
        request_id: str,
        model_name: str,
        protocol: Protocol,
        started_ns: int,
        statistics: VersionStatistics | None,
        model_known: bool = True,
        rows: int = 0,
        result: ExecutionResult | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Record one request that started at ``started_ns`` (``time.monotonic_ns()``) and ended now.

        ``statistics`` is the resolved version's (None when the request did not resolve to one; then
        ``model_known`` says whether the model exists at all); ``rows`` is the request's batch size;
        ``result`` the executor's answer on success; ``error`` what it raised otherwise.
        """
        duration_ns = time.monotonic_ns() - started_ns
        duration_s = duration_ns / 1e9
        outcome = outcome_of(error)
        if result is not None and result.cache == "hit":
            rows = 0  # as Triton's inference_count: an answer from the cache inferred nothing
        if statistics is not None:
            model, version = statistics.name, statistics.version
            if result is not None and error is None:
                statistics.record_success(result, rows=rows, request_ns=duration_ns)
            else:
                statistics.record_failure(request_ns=duration_ns)
        else:
            model, version = (model_name if model_known else ""), ""
        self.metrics.record_request(
            model=model,
            version=version,
            protocol=protocol,
            outcome=outcome,
            duration_s=duration_s,
            inferences=rows,
            result=result,
        )
        status = "OK" if error is None else _status(error)
        log_access(
            request_id=request_id,
            model=model_name,
            version=version,
            protocol=protocol,
            outcome=outcome,
            status=status,
            duration_s=duration_s,
            batch_size=result.batch_size if result is not None else None,
            error=None if error is None else _message(error),
        )


def _status(error: BaseException) -> str:
    return error.code.value if isinstance(error, ModelportError) else "INTERNAL"


def _message(error: BaseException) -> str:
    return error.message if isinstance(error, ModelportError) else f"{type(error).__name__}: {error}"
