"""A loaded model version and what describes it: the spec an executor is built from, the version's live state
(executor, statistics, requests in flight), and the repository index row.

``ModelManager`` creates and retires these; the data plane brackets each request with ``enter``/``exit`` so a
version being replaced is closed only once its in-flight requests are done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..executor import Executor, VersionSpec
from ..observability.statistics import VersionStatistics
from ..response_cache import VersionCache
from .folders import Stamp

__all__ = ["ExecutorFactory", "LoadedVersion", "ModelIndexEntry", "VersionCache"]

logger = logging.getLogger(__name__)


ExecutorFactory = Callable[[VersionSpec], Executor]


@dataclass(frozen=True, slots=True)
class ModelIndexEntry:
    """One row of the repository index (Triton's states: READY, UNAVAILABLE, LOADING, UNLOADING)."""

    name: str
    version: str
    state: str
    reason: str


class LoadedVersion:
    """A version that serves; the data plane brackets each request with :meth:`enter`/:meth:`exit`."""

    def __init__(
        self,
        spec: VersionSpec,
        executor: Executor,
        stamp: tuple[Stamp, Stamp],
        cache: VersionCache | None = None,
    ) -> None:
        self.spec = spec
        self.executor = executor
        self.cache = cache  # its share of the response cache (None: not enabled, or no --cache-size)
        self.stamp = stamp  # (model file, config file) when loaded
        self.statistics = VersionStatistics(spec.name, str(spec.version), warmup=executor.warmup)
        self._in_flight = 0
        self.last_used = time.monotonic()  # the last request's start: the memory budget evicts by it
        self.memory_bytes: int | None = None  # as --memory-budget last measured it (None: no budget)
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def failure(self) -> str | None:
        """Why the version no longer serves although it loaded (its executor failed), or None."""
        return self.executor.failure

    @property
    def in_flight(self) -> int:
        """Requests running on this version now."""
        return self._in_flight

    def enter(self) -> None:
        self.last_used = time.monotonic()
        self._in_flight += 1
        self._idle.clear()

    def exit(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def retire(self, drain_timeout: float) -> None:
        """Drop its cached answers, wait for in-flight requests (at most ``drain_timeout`` s), then close the
        executor."""
        if self.cache is not None:
            self.cache.clear()
        deadline = time.monotonic() + drain_timeout
        try:
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        except TimeoutError:
            logger.warning(
                "model %s version %s: %d request(s) still running after the %.1f s drain timeout",
                self.spec.name,
                self.spec.version,
                self._in_flight,
                drain_timeout,
            )
        await self.executor.close(drain_timeout=max(0.0, deadline - time.monotonic()))
