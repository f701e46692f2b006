"""The server's Prometheus metrics: one dedicated registry, recorded in the server process only.

Worker processes never touch a metric: they send their timings back with each result and the server process
records them, so no multiprocess collector is needed. Worker CPU time and resident memory are read by the
server process from the worker pids (with psutil) at scrape time.

Every name is ``modelport_*`` in base units (seconds, bytes); counters end in ``_total``. Label values:
``model`` and ``version`` name a model version the server has (``version`` is the version that ran, never the
client's empty "latest"); requests for a model the server does not know are counted with ``model=""`` and
``version=""``, so client-chosen names cannot create series. ``protocol`` is ``http`` or ``grpc``; ``outcome``
is one of :class:`Outcome`. The names and labels are an interface, documented in README.md ("Operations").
"""

from __future__ import annotations

import asyncio
import enum
import importlib.metadata
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

from .errors import DeadlineExceeded, ErrorCode, ModelportError, QueueFull
from .executor import ExecutionResult
from .inference import Protocol
from .live_metrics import LiveStateCollector, StateSource, VersionState, WorkerState

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "LATENCY_BUCKETS",
    "LOAD_BUCKETS",
    "Outcome",
    "ServerMetrics",
    "VersionMetrics",
    "VersionState",
    "WorkerState",
    "outcome_of",
]

# Inference latencies: from a tiny model on CPU (~100 us) to a large batch or a long queue (seconds).
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Rows per executed batch: powers of two up to the largest max_batch_size anybody configures.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Loading a model version: session creation plus worker start-up, well under a second up to minutes.
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

_MODEL = ("model", "version")


class Outcome(enum.Enum):
    """How a request ended, as the ``outcome`` label says it."""

    SUCCESS = "success"
    INVALID_INPUT = "invalid_input"  # malformed, wrong signature, unknown model, too large, unsupported
    QUEUE_FULL = "queue_full"  # refused at once: the model's queue was at its bound
    TIMEOUT = "timeout"  # the request's deadline passed before it ran
    SERVER_ERROR = "server_error"  # everything else: not ready, shutting down, a failure inside the server


_CLIENT_CODES = frozenset({ErrorCode.INVALID_ARG, ErrorCode.UNSUPPORTED, ErrorCode.RESOURCE_EXHAUSTED})


def outcome_of(error: BaseException | None) -> Outcome:
    """The outcome of a request that raised ``error`` (``None``: it succeeded)."""
    if error is None:
        return Outcome.SUCCESS
    if isinstance(error, QueueFull):
        return Outcome.QUEUE_FULL
    if isinstance(error, DeadlineExceeded):
        return Outcome.TIMEOUT
    if isinstance(error, ModelportError) and error.code in _CLIENT_CODES:
        return Outcome.INVALID_INPUT
    return Outcome.SERVER_ERROR


class ServerMetrics:
    """Every metric the server exports, in its own :class:`CollectorRegistry`, with one method per event.

    The data plane calls :meth:`record_request` once per request and :meth:`in_flight` around it; each
    version's executor and pool get a :class:`VersionMetrics` (:meth:`for_version`) for batches, worker
    restarts and autoscaling decisions; the model manager calls
    :meth:`record_model_load`; ``app.py`` calls :meth:`watch` once, so that queue depths and workers are
    read when scraped (see :mod:`.live_metrics`). All methods are cheap, thread-safe and never raise.
    """

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._requests = Counter(
            "modelport_requests",
            "Inference requests by outcome.",
            [*_MODEL, "protocol", "outcome"],
            registry=reg,
        )
        self._request_duration = Histogram(
            "modelport_request_duration_seconds",
            "Time from a request entering the data plane to its answer (or error), all outcomes.",
            [*_MODEL, "protocol", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._inferences = Counter(
            "modelport_inferences",
            "Rows inferred by successful requests (a batch of N counts N).",
            _MODEL,
            registry=reg,
        )
        self._executions = Counter(
            "modelport_executions",
            "Model executions (batches run; many requests can share one).",
            _MODEL,
            registry=reg,
        )
        self._queue_duration = Histogram(
            "modelport_queue_duration_seconds",
            "Time a successful request waited in the queue and for a free worker.",
            _MODEL,
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._compute_duration = Histogram(
            "modelport_compute_duration_seconds",
            "Compute time (input copy, inference, output copy) of the batch a successful request ran in.",
            _MODEL,
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._batch_size = Histogram(
            "modelport_batch_size",
            "Rows per executed batch.",
            _MODEL,
            buckets=BATCH_SIZE_BUCKETS,
            registry=reg,
        )
        self._in_flight = Gauge(
            "modelport_requests_in_flight", "Requests inside the data plane right now.", _MODEL, registry=reg
        )
        self._worker_restarts = Counter(
            "modelport_worker_restarts", "Worker processes restarted after they died.", _MODEL, registry=reg
        )
        self._autoscale = Counter(
            "modelport_autoscale_decisions",
            "Autoscaling decisions carried out, by direction (up, down).",
            [*_MODEL, "direction"],
            registry=reg,
        )
        self._loads = Counter("modelport_model_loads", "Model versions loaded.", _MODEL, registry=reg)
        self._load_failures = Counter(
            "modelport_model_load_failures", "Model versions that failed to load.", _MODEL, registry=reg
        )
        self._load_duration = Histogram(
            "modelport_model_load_duration_seconds",
            "Time to load a model version (successful loads).",
            _MODEL,
            buckets=LOAD_BUCKETS,
            registry=reg,
        )
        Info("modelport_build", "The modelport release serving.", registry=reg).info({"version": _release()})
        self.live = LiveStateCollector()
        # Label children resolved once; a lost race only resolves the same child twice (labels() is locked).
        self._request_children: dict[tuple[str, str, str, Outcome], tuple[Counter, Histogram]] = {}
        self._success_children: dict[tuple[str, str], tuple[Counter, Histogram, Histogram]] = {}
        self._in_flight_children: dict[tuple[str, str], Gauge] = {}
        reg.register(self.live)
        if process_metrics:
            ProcessCollector(namespace="modelport", registry=reg)

    def record_request(
        self,
        *,
        model: str,
        version: str,
        protocol: Protocol,
        outcome: Outcome,
        duration_s: float,
        inferences: int = 0,
        result: ExecutionResult | None = None,
    ) -> None:
        """Count one finished request; ``inferences`` (its rows) and ``result``'s timings count on success."""
        key = (model, version, protocol, outcome)
        children = self._request_children.get(key)
        if children is None:  # labels() costs a lock and a few microseconds: resolve once per label set
            label_values = (model, version, protocol, outcome.value)
            children = (self._requests.labels(*label_values), self._request_duration.labels(*label_values))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(duration_s)
        if outcome is not Outcome.SUCCESS:
            return
        success = self._success_children.get((model, version))
        if success is None:
            success = (
                self._inferences.labels(model, version),
                self._queue_duration.labels(model, version),
                self._compute_duration.labels(model, version),
            )
            self._success_children[(model, version)] = success
        success[0].inc(inferences)
        if result is not None:
            success[1].observe(result.queue_ns / 1e9)
            compute_ns = result.compute_input_ns + result.compute_infer_ns + result.compute_output_ns
            success[2].observe(compute_ns / 1e9)

    def in_flight(self, model: str, version: str) -> AbstractContextManager[None]:
        """A context manager that counts a request in ``modelport_requests_in_flight`` while it runs."""
        gauge = self._in_flight_children.get((model, version))
        if gauge is None:  # as in record_request: labels() once per label set, not once per request
            gauge = self._in_flight_children[(model, version)] = self._in_flight.labels(model, version)
        return gauge.track_inprogress()

    def watch(self, loop: asyncio.AbstractEventLoop, source: StateSource) -> None:
        """Read queue depths and workers from ``source()``, called on ``loop`` at each scrape."""
        self.live.watch(loop, source)

    def for_version(self, model: str, version: str) -> VersionMetrics:
        """The recorder an executor and its worker pool use for one model version."""
        return VersionMetrics(
            executions=self._executions.labels(model, version),
            batch_size=self._batch_size.labels(model, version),
            restarts=self._worker_restarts.labels(model, version),
            scaled_up=self._autoscale.labels(model, version, "up"),
            scaled_down=self._autoscale.labels(model, version, "down"),
        )

    def record_model_load(self, model: str, version: str, *, duration_s: float, ok: bool) -> None:
        """Count one load attempt of a model version; a successful one also observes its duration."""
        if ok:
            self._loads.labels(model, version).inc()
            self._load_duration.labels(model, version).observe(duration_s)
        else:
            self._load_failures.labels(model, version).inc()


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionMetrics:
    """The events of one model version's executor and pool, with the label values already bound."""

    executions: Counter
    batch_size: Histogram
    restarts: Counter
    scaled_up: Counter
    scaled_down: Counter

    def record_execution(self, batch_size: int) -> None:
        """Count one successfully executed batch of ``batch_size`` rows."""
        self.executions.inc()
        self.batch_size.observe(batch_size)

    def record_worker_restart(self) -> None:
        """Count one worker restarted after it died."""
        self.restarts.inc()

    def record_autoscale(self, direction: Literal["up", "down"]) -> None:
        """Count one autoscaling decision carried out: a worker added (``up``) or removed (``down``)."""
        (self.scaled_up if direction == "up" else self.scaled_down).inc()


def _release() -> str:
    try:
        return importlib.metadata.version("modelport")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
