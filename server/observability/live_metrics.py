"""Metrics of what is true right now, read at scrape time: queue depths, workers by state, worker processes.

Nobody pushes these values: when Prometheus scrapes, the collector asks the event loop for a snapshot of every
loaded version (``queue_depth`` and the workers with their pids and states), then reads each worker's CPU time
and resident memory with psutil in the scrape thread. The snapshot is taken on the loop, so the pools' own
state is never read from another thread; if the loop does not answer within ``snapshot_timeout_s`` (stuck or
shutting down), these series are left out of that scrape and everything else is still served.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LiveStateCollector", "VersionState", "WorkerState"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerState:
    """One worker process: an id stable for its life (e.g. its slot), its pid, its state (e.g. ``busy``)."""

    worker: str
    pid: int
    state: str


@dataclass(frozen=True, slots=True)
class VersionState:
    """What a loaded model version looks like now."""

    model: str
    version: str
    queue_depth: int
    workers: Sequence[WorkerState] = ()


StateSource = Callable[[], Iterable[VersionState]]


class LiveStateCollector(Collector):
    """Yields ``modelport_queue_depth``, ``modelport_workers`` and the worker process metrics when scraped.

    :meth:`watch` connects it to the event loop and the function that lists the loaded versions' state
    (called on the loop, so it may read any loop-owned object); until then it yields empty families.
    """

    def __init__(self, *, snapshot_timeout_s: float = 1.0) -> None:
        self._timeout = snapshot_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._source: StateSource | None = None

    def watch(self, loop: asyncio.AbstractEventLoop, source: StateSource) -> None:
        """Read ``source()`` on ``loop`` at every scrape from now on."""
        self._loop, self._source = loop, source

    def _snapshot(self) -> list[VersionState]:
        loop, source = self._loop, self._source
        if loop is None or source is None:
            return []

        answer: concurrent.futures.Future[list[VersionState]] = concurrent.futures.Future()

        def take() -> None:  # runs on the loop
            if not answer.set_running_or_notify_cancel():
                return  # the scrape gave up waiting
            try:
                answer.set_result(list(source()))
            except Exception as error:
                answer.set_exception(error)

        try:
            loop.call_soon_threadsafe(take)
            return answer.result(self._timeout)
        except Exception:  # a stuck or closed loop, or a failing source: leave these series out
            answer.cancel()
            _log.warning("metrics: no live state from the event loop for this scrape", exc_info=True)
            return []

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        versions = self._snapshot()
        queue = GaugeMetricFamily(
            "modelport_queue_depth",
            "Requests waiting in the model version's queue.",
            labels=["model", "version"],
        )
        workers = GaugeMetricFamily(
            "modelport_workers", "Worker processes by state.", labels=["model", "version", "state"]
        )
        process_labels = ["model", "version", "worker"]
        cpu = CounterMetricFamily(
            "modelport_worker_cpu_seconds",
            "User and system CPU time of a worker process.",
            labels=process_labels,
        )
        rss = GaugeMetricFamily(
            "modelport_worker_resident_memory_bytes",
            "Resident memory of a worker process.",
            labels=process_labels,
        )
        for version in versions:
            queue.add_metric([version.model, version.version], version.queue_depth)
            for state, count in sorted(collections.Counter(w.state for w in version.workers).items()):
                workers.add_metric([version.model, version.version, state], count)
            for worker in version.workers:
                usage = _usage(worker.pid)
                if usage is not None:
                    cpu.add_metric([version.model, version.version, worker.worker], usage[0])
                    rss.add_metric([version.model, version.version, worker.worker], usage[1])
        yield from (queue, workers, cpu, rss)


def _usage(pid: int) -> tuple[float, int] | None:
    """(user + system CPU seconds, resident bytes) of ``pid``; ``None`` if it is gone."""
    if pid <= 0:  # not spawned yet
        return None
    try:
        with (process := psutil.Process(pid)).oneshot():
            times = process.cpu_times()
            return times.user + times.system, process.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None
