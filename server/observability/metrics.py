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
import contextlib
import enum
import functools
import importlib.metadata
import itertools
import time
import typing
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..errors import DeadlineExceeded, ErrorCode, ModelportError, QueueFull
from ..executor import ExecutionResult
from ..inference import Protocol
from ..response_cache import CacheUsage
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


_FAILURES = tuple(outcome for outcome in Outcome if outcome is not Outcome.SUCCESS)
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
    read when scraped (see :mod:`.live_metrics`). All methods are cheap and never raise.

    The per-request and per-batch series (:meth:`record_request`, :meth:`in_flight`,
    :meth:`VersionMetrics.record_execution`) are plain numbers written by the event-loop thread only, without
    a lock, and read by :class:`_RequestSeries` when scraped: a ``prometheus_client`` child takes a lock per
    call and walks a histogram's buckets in Python, several microseconds per request. The rarely hit ones
    (loads, restarts, autoscaling) stay ``prometheus_client`` objects and are thread-safe.
    """

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._series = _RequestSeries()  # registered first: its families come first, as they always did
        reg.register(self._series)
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
        self._warmups = Histogram(
            "modelport_model_warmup_duration_seconds",
            "Time one instance of a model version took to run its warm-up samples (model_warmup) before "
            "it took requests; one observation per instance started, scaling and restarts included.",
            _MODEL,
            buckets=LOAD_BUCKETS,
            registry=reg,
        )
        self._version_memory = Gauge(
            "modelport_model_memory_bytes",
            "Memory a loaded model version holds, as --memory-budget measures it (workers' PSS, or the "
            "server's RSS growth across a thread instance's load).",
            _MODEL,
            registry=reg,
        )
        self._evictions = Counter(
            "modelport_model_evictions",
            "Model versions unloaded to keep within --memory-budget.",
            _MODEL,
            registry=reg,
        )
        Info("modelport_build", "The modelport release serving.", registry=reg).info({"version": _release()})
        self.live = LiveStateCollector()
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
        """Count one finished request; ``inferences`` (its rows) and ``result``'s timings count on success.

        Call on the event loop (the series have one writer and no lock)."""
        series = self._series
        key = (model, version, protocol, outcome)
        duration = series.requests.get(key)
        if duration is None:
            duration = series.requests[key] = _Histogram(LATENCY_BUCKETS)
        duration.observe(duration_s)
        if outcome is not Outcome.SUCCESS:
            return
        success = series.successes.get((model, version))
        if success is None:
            success = series.successes[(model, version)] = _Successes()
        success.inferences += inferences
        if result is not None and result.cache is not None:
            success.cache[result.cache == "miss"] += 1
            if result.cache == "hit":  # it neither queued nor computed (as the statistics count it)
                return
        if result is not None:
            success.queue.observe(result.queue_ns / 1e9)
            compute_ns = result.compute_input_ns + result.compute_infer_ns + result.compute_output_ns
            success.compute.observe(compute_ns / 1e9)

    def request_histograms(self) -> dict[tuple[str, str], tuple[list[float], float]]:
        """Per (model, version): the request-duration bucket counts of every outcome and protocol added
        together (:data:`LATENCY_BUCKETS`, then ``+Inf``), and how many of those requests failed. Read on the
        event loop (by the console's sampler); requests for unknown models are left out."""
        totals: dict[tuple[str, str], tuple[list[float], float]] = {}
        for (model, version, _protocol, outcome), series in self._series.requests.items():
            if not model:
                continue
            counts = series.values[:-1]
            known = totals.get((model, version))
            if known is not None:
                counts = [a + b for a, b in zip(known[0], counts, strict=True)]
            failed = (known[1] if known else 0.0) + (
                0.0 if outcome is Outcome.SUCCESS else sum(series.values[:-1])
            )
            totals[(model, version)] = (counts, failed)
        return totals

    def in_flight(self, model: str, version: str) -> AbstractContextManager[None]:
        """A context manager that counts a request in ``modelport_requests_in_flight`` while it runs.

        Use it on the event loop; one object per (model, version), reused by every request."""
        gauge = self._series.in_flight.get((model, version))
        if gauge is None:
            gauge = self._series.in_flight[(model, version)] = _InFlight()
        return gauge

    def watch(self, loop: asyncio.AbstractEventLoop, source: StateSource) -> None:
        """Read queue depths and workers from ``source()``, called on ``loop`` at each scrape."""
        self.live.watch(loop, source)

    def for_version(self, model: str, version: str) -> VersionMetrics:
        """The recorder an executor and its worker pool use for one model version (the same series when
        called again for it, as after a reload)."""
        batches = self._series.batches.get((model, version))
        if batches is None:
            batches = self._series.batches[(model, version)] = _Histogram(BATCH_SIZE_BUCKETS)
        self._load_failures.labels(model, version)  # at 0 from now on (see record_model_load)
        return VersionMetrics(
            batches=batches,
            restarts=self._worker_restarts.labels(model, version),
            scaled_up=self._autoscale.labels(model, version, "up"),
            scaled_down=self._autoscale.labels(model, version, "down"),
            warmups=self._warmups.labels(model, version),
        )

    def record_model_load(self, model: str, version: str, *, duration_s: float, ok: bool) -> None:
        """Count one load attempt of a model version; a successful one also observes its duration.

        Both counters of the version exist from its first attempt on, the one not counted at 0: a dashboard
        shows 0 instead of "no data", and an alert on an increase needs no ``absent()``. (The restart and
        autoscaling counters exist at 0 from :meth:`for_version` on.)"""
        loads, failures = self._loads.labels(model, version), self._load_failures.labels(model, version)
        if ok:
            loads.inc()
            self._load_duration.labels(model, version).observe(duration_s)
        else:
            failures.inc()

    def record_version_memory(self, model: str, version: str, size: int | None) -> None:
        """Set a version's measured memory; None removes its series (it no longer serves)."""
        if size is None:
            with contextlib.suppress(KeyError):
                self._version_memory.remove(model, version)
        else:
            self._version_memory.labels(model, version).set(size)

    def watch_cache(self, usage: Callable[[], CacheUsage]) -> None:
        """Export the response cache's ``usage()`` at each scrape (``modelport_cache_*``)."""
        self.registry.register(_CacheCollector(usage))

    def record_eviction(self, model: str, version: str) -> None:
        """Count one version evicted to keep within the memory budget."""
        self._evictions.labels(model, version).inc()


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionMetrics:
    """The events of one model version's executor and pool, with the label values already bound."""

    batches: _Histogram  # modelport_batch_size; its count is modelport_executions_total
    restarts: Counter
    scaled_up: Counter
    scaled_down: Counter
    warmups: Histogram  # modelport_model_warmup_duration_seconds, this version's child

    def record_execution(self, batch_size: int) -> None:
        """Count one successfully executed batch of ``batch_size`` rows (on the event loop)."""
        self.batches.observe(batch_size)

    def record_worker_restart(self) -> None:
        """Count one worker restarted after it died."""
        self.restarts.inc()

    def record_autoscale(self, direction: Literal["up", "down"]) -> None:
        """Count one autoscaling decision carried out: a worker added (``up``) or removed (``down``)."""
        (self.scaled_up if direction == "up" else self.scaled_down).inc()

    def record_warmup(self, seconds: float) -> None:
        """Observe one instance's warm-up (``model_warmup``), as it started."""
        self.warmups.observe(seconds)


class _Histogram:
    """One histogram series with a single writer and no lock: per-bucket counts, then the sum, in one list.

    Counts are per bucket (``bisect_left`` puts a value equal to a bound in that bound's bucket, as ``le``
    means; the last count is ``+Inf``); the scrape makes them cumulative. Keeping the sum in the same list
    lets a scrape in another thread copy counts and sum together with one ``list(...)``, which the GIL makes
    atomic.
    """

    __slots__ = ("bounds", "created", "values")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.values: list[float] = [0] * (len(bounds) + 1) + [0.0]
        self.created = time.time()

    def observe(self, value: float) -> None:
        values = self.values
        values[bisect_left(self.bounds, value)] += 1
        values[-1] += value


@dataclass(slots=True, eq=False)
class _Successes:
    """The series of one version's successful requests: rows inferred, queue and compute time."""

    inferences: int = 0
    cache: list[int] = field(default_factory=lambda: [0, 0])  # response cache hits, misses
    queue: _Histogram = field(default_factory=lambda: _Histogram(LATENCY_BUCKETS))
    compute: _Histogram = field(default_factory=lambda: _Histogram(LATENCY_BUCKETS))
    created: float = field(default_factory=time.time)


class _InFlight:
    """``modelport_requests_in_flight`` of one version, and the context manager that counts a request in it
    (reentrant: the one object serves every concurrent request of the version on the loop)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def __enter__(self) -> None:
        self.value += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.value -= 1


class _RequestSeries(Collector):
    """The per-request and per-batch series, written by the event loop, exported at scrape time.

    ``collect`` runs in the metrics listener's thread while the loop keeps writing: it copies each dict
    (``dict.copy``) and each histogram's list (``list(...)``), single C calls the GIL does not interrupt,
    so a scrape never sees a dict change size under it. It yields the families ``prometheus_client``'s
    Counter, Histogram and Gauge yielded before (same names, help, types, labels, buckets and ``_created``).
    """

    def __init__(self) -> None:
        # modelport_request_duration_seconds; its count is modelport_requests_total (one observation each)
        self.requests: dict[tuple[str, str, str, Outcome], _Histogram] = {}
        self.successes: dict[tuple[str, str], _Successes] = {}
        # modelport_batch_size; its count is modelport_executions_total
        self.batches: dict[tuple[str, str], _Histogram] = {}
        self.in_flight: dict[tuple[str, str], _InFlight] = {}

    def collect(self) -> Iterator[Metric]:
        # Whether to write _created samples, as the library's own metrics decide (disable_created_metrics() or
        # PROMETHEUS_DISABLE_CREATED_SERIES); only readable through this private module variable, so a release
        # without it falls back to the library's default (written) instead of failing every scrape.
        created = bool(getattr(prometheus_metrics, "_use_created", True))
        request_labels = [*_MODEL, "protocol", "outcome"]
        requests = CounterMetricFamily(
            "modelport_requests", "Inference requests by outcome.", labels=request_labels
        )
        request_duration = HistogramMetricFamily(
            "modelport_request_duration_seconds",
            "Time from a request entering the data plane to its answer (or error), all outcomes.",
            labels=request_labels,
        )
        seen = self.requests.copy()
        for (model, version, protocol, outcome), series in seen.items():
            labels = [model, version, protocol, outcome.value]
            count = _add_histogram(request_duration, request_labels, labels, series, created=created)
            requests.add_metric(labels, count, series.created if created else None)
        # Every known version's failure outcomes exist at 0 before the first failure, so a dashboard shows 0
        # and an alert on increase() needs no absent(); only the counter: a histogram per outcome would be
        # ~20 series per version for nothing.
        for model, version in self.batches.copy():
            for protocol in typing.get_args(Protocol):
                for outcome in _FAILURES:
                    if (model, version, protocol, outcome) not in seen:
                        requests.add_metric([model, version, protocol, outcome.value], 0.0)

        inferences = CounterMetricFamily(
            "modelport_inferences",
            "Rows inferred by successful requests (a batch of N counts N).",
            labels=_MODEL,
        )
        queue_duration = HistogramMetricFamily(
            "modelport_queue_duration_seconds",
            "Time a successful request waited in the queue and for a free worker.",
            labels=_MODEL,
        )
        compute_duration = HistogramMetricFamily(
            "modelport_compute_duration_seconds",
            "Compute time (input copy, inference, output copy) of the batch a successful request ran in.",
            labels=_MODEL,
        )
        cache_hits = CounterMetricFamily(
            "modelport_cache_hits", "Requests answered from the response cache.", labels=_MODEL
        )
        cache_misses = CounterMetricFamily(
            "modelport_cache_misses",
            "Requests to a version with the response cache enabled that were computed (and then cached).",
            labels=_MODEL,
        )
        for key, success in self.successes.copy().items():
            labels = list(key)
            inferences.add_metric(labels, success.inferences, success.created if created else None)
            if success.cache != [0, 0]:
                hits, misses = success.cache
                cache_hits.add_metric(labels, hits, success.created if created else None)
                cache_misses.add_metric(labels, misses, success.created if created else None)
            _add_histogram(queue_duration, _MODEL, labels, success.queue, created=created)
            _add_histogram(compute_duration, _MODEL, labels, success.compute, created=created)

        executions = CounterMetricFamily(
            "modelport_executions",
            "Model executions (batches run; many requests can share one).",
            labels=_MODEL,
        )
        batch_size = HistogramMetricFamily("modelport_batch_size", "Rows per executed batch.", labels=_MODEL)
        for key, series in self.batches.copy().items():
            labels = list(key)
            count = _add_histogram(batch_size, _MODEL, labels, series, created=created)
            executions.add_metric(labels, count, series.created if created else None)

        in_flight = GaugeMetricFamily(
            "modelport_requests_in_flight", "Requests inside the data plane right now.", labels=_MODEL
        )
        for key, gauge in self.in_flight.copy().items():
            in_flight.add_metric(list(key), gauge.value)

        yield from (requests, request_duration, inferences, executions)
        yield from (queue_duration, compute_duration, batch_size, in_flight, cache_hits, cache_misses)


class _CacheCollector(Collector):
    """The response cache's size and evictions, read when scraped."""

    def __init__(self, usage: Callable[[], CacheUsage]) -> None:
        self._usage = usage

    def collect(self) -> Iterator[Metric]:
        usage = self._usage()
        yield GaugeMetricFamily(
            "modelport_cache_capacity_bytes",
            "The response cache's size (--cache-size).",
            usage.capacity_bytes,
        )
        yield GaugeMetricFamily(
            "modelport_cache_used_bytes", "Bytes the response cache's entries hold now.", usage.used_bytes
        )
        yield GaugeMetricFamily(
            "modelport_cache_entries", "Answers in the response cache now.", usage.entries
        )
        yield CounterMetricFamily(
            "modelport_cache_evictions",
            "Answers removed from the response cache to make room (least recently used first).",
            usage.evictions,
        )


def _add_histogram(
    family: HistogramMetricFamily,
    label_names: Sequence[str],
    labels: list[str],
    series: _Histogram,
    *,
    created: bool,
) -> float:
    """Add ``series`` to ``family`` as ``prometheus_client.Histogram`` writes it (cumulative buckets,
    ``_count``, ``_sum``, ``_created``); returns its count."""
    values = list(series.values)  # counts and sum of one instant, copied in one call
    cumulative = list(itertools.accumulate(values[:-1]))
    family.add_metric(labels, list(zip(_le(series.bounds), cumulative, strict=True)), values[-1])
    if created:
        family.add_sample(
            family.name + "_created", dict(zip(label_names, labels, strict=True)), series.created
        )
    return cumulative[-1]


@functools.cache
def _le(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le`` label values of ``bounds`` plus ``+Inf``, formatted as ``prometheus_client`` does."""
    return (*map(floatToGoString, bounds), "+Inf")


def _release() -> str:
    try:
        return importlib.metadata.version("modelport")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
