"""The console's live series: request rate, p50/p99 latency and queue depth per model version, sampled every
``interval_s`` and kept for ``window_s`` (bounded: ``window_s / interval_s`` samples per version).

Nothing is counted twice: each tick reads the request-duration histograms :class:`~.metrics.ServerMetrics`
already records (:meth:`~.metrics.ServerMetrics.request_histograms`) and the executors' status (queue depth,
workers), and turns the histogram's growth since the last tick into a rate and two quantiles, interpolated
within a bucket as Prometheus' ``histogram_quantile`` does. A version that stops serving loses its series.
Everything runs on the event loop (the tick and the readers), so nothing is locked.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..executor import ExecutorStatus
from .metrics import LATENCY_BUCKETS, ServerMetrics

__all__ = ["LiveSampler", "Sample", "quantile"]

_log = logging.getLogger(__name__)

StatusSource = Callable[[], Iterable[tuple[str, str, ExecutorStatus]]]


@dataclass(frozen=True, slots=True)
class Sample:
    """One tick of one version: wall time, requests and failed requests per second over the last interval,
    p50 and p99 latency in seconds (None: no request in the interval), queue depth at the tick."""

    t: float
    rate: float
    errors: float
    p50: float | None
    p99: float | None
    queue: int


def quantile(q: float, counts: Sequence[float], bounds: Sequence[float] = LATENCY_BUCKETS) -> float | None:
    """The ``q`` quantile of per-bucket ``counts`` (the last is ``+Inf``) with upper ``bounds``, linear within
    the bucket it falls in; the highest finite bound when it falls in ``+Inf``; None for no observations."""
    total = sum(counts)
    if total <= 0:
        return None
    rank, seen = q * total, 0.0
    for index, count in enumerate(counts):
        if count > 0 and seen + count >= rank:
            if index >= len(bounds):
                return float(bounds[-1])
            lower = bounds[index - 1] if index > 0 else 0.0
            return float(lower + (bounds[index] - lower) * (rank - seen) / count)
        seen += count
    return float(bounds[-1])


@dataclass(slots=True)
class _Series:
    samples: collections.deque[Sample]
    last_counts: list[float]
    last_failures: float
    status: ExecutorStatus | None = None


@dataclass(slots=True)
class LiveSampler:
    """Samples ``metrics`` and ``statuses()`` (model, version, executor status of every serving version;
    called on the loop) every ``interval_s`` from :meth:`start` until the task it returns is cancelled."""

    metrics: ServerMetrics
    statuses: StatusSource
    interval_s: float = 2.0
    window_s: float = 600.0
    _series: dict[tuple[str, str], _Series] = field(default_factory=dict)
    _last_tick: float = 0.0

    @property
    def capacity(self) -> int:
        """Samples kept per version."""
        return max(1, round(self.window_s / self.interval_s))

    def start(self) -> asyncio.Task[None]:
        """Take a first reading now and tick from the running loop; cancel the task to stop."""
        self.tick()
        return asyncio.create_task(self._run(), name="console sampler")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.tick()
            except Exception:  # a bad tick must not end the series; the next one starts over from its counts
                _log.warning("console sampler: a tick failed", exc_info=True)

    def tick(self, now: float | None = None) -> None:
        """Read the counters once: a sample per serving version (a version's first reading only sets its
        baseline)."""
        now = time.time() if now is None else now
        elapsed = now - self._last_tick if self._last_tick else 0.0
        self._last_tick = now
        histograms = self.metrics.request_histograms()
        seen: set[tuple[str, str]] = set()
        for model, version, status in self.statuses():
            key = (model, version)
            seen.add(key)
            counts, failures = histograms.get(key, ([0.0] * (len(LATENCY_BUCKETS) + 1), 0.0))
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(
                    collections.deque(maxlen=self.capacity), counts, failures
                )
            else:
                self._sample(series, counts, failures, now=now, elapsed=elapsed, queue=status.queue_depth)
            series.status = status
        for gone in self._series.keys() - seen:
            del self._series[gone]

    @staticmethod
    def _sample(
        series: _Series, counts: list[float], failures: float, *, now: float, elapsed: float, queue: int
    ) -> None:
        growth = [max(0.0, new - old) for new, old in zip(counts, series.last_counts, strict=True)]
        requests = sum(growth)
        per_second = 1.0 / elapsed if elapsed > 0 else 0.0
        series.samples.append(
            Sample(
                t=now,
                rate=requests * per_second,
                errors=max(0.0, failures - series.last_failures) * per_second,
                p50=quantile(0.5, growth),
                p99=quantile(0.99, growth),
                queue=queue,
            )
        )
        series.last_counts, series.last_failures = counts, failures

    def snapshot(self, *, since: float = 0.0) -> dict[str, Any]:
        """The JSON the console polls: per version its samples newer than ``since`` (column-wise, latency in
        milliseconds) and its executor's status now (workers with uptime, queue, bounds, failure)."""
        now = time.time()
        versions = []
        for (model, version), series in sorted(self._series.items()):
            samples = [s for s in series.samples if s.t > since]
            entry: dict[str, Any] = {
                "model": model,
                "version": version,
                "samples": {
                    "t": [s.t for s in samples],
                    "rate": [round(s.rate, 3) for s in samples],
                    "errors": [round(s.errors, 3) for s in samples],
                    "p50_ms": [_ms(s.p50) for s in samples],
                    "p99_ms": [_ms(s.p99) for s in samples],
                    "queue": [s.queue for s in samples],
                },
            }
            if series.status is not None:
                entry.update(_status_json(series.status, now))
            versions.append(entry)
        return {"interval_s": self.interval_s, "window_s": self.window_s, "now": now, "versions": versions}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 4)


def _status_json(status: ExecutorStatus, now: float) -> dict[str, Any]:
    return {
        "queue_depth": status.queue_depth,
        "queue_capacity": status.queue_capacity,
        "batches_in_flight": status.batches_in_flight,
        "min_workers": status.min_workers,
        "max_workers": status.max_workers,
        "threads": status.threads,
        "failure": status.failure,
        "workers": [
            {
                "id": str(w.id),
                "kind": w.kind,
                "pid": w.pid,
                "state": w.state.lower(),
                "uptime_s": round(max(0.0, now - w.started_at), 1),
                "batches": w.batches,
            }
            for w in status.workers
        ],
    }
