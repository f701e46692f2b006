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
from pathlib import Path

from .executor import Executor
from .model_config import ResolvedConfig
from .repository import Stamp
from .session import Signature
from .statistics import VersionStatistics

__all__ = ["ExecutorFactory", "LoadedVersion", "ModelIndexEntry", "VersionSpec"]

logger = logging.getLogger("modelport.server.models")


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """Everything an executor needs to run one model version.

    ``signature`` is the graph's inputs, outputs and active provider, read from a session that was opened
    with the configured providers and options and released again: executors open their own sessions (the
    server process holds no weights).
    """

    name: str
    version: int
    path: Path
    config: ResolvedConfig
    signature: Signature


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

    def __init__(self, spec: VersionSpec, executor: Executor, stamp: tuple[Stamp, Stamp]) -> None:
        self.spec = spec
        self.executor = executor
        self.stamp = stamp  # (model file, config file) when loaded
        self.statistics = VersionStatistics(spec.name, str(spec.version))
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def failure(self) -> str | None:
        """Why the version no longer serves although it loaded (its executor failed), or None."""
        return self.executor.failure

    def enter(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def exit(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def retire(self, drain_timeout: float) -> None:
        """Wait for in-flight requests (at most ``drain_timeout`` s), then close the executor."""
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
