"""Worker supervision for a pool: crash accounting with restart back-off, the crash-loop verdict, and the
watchdog that kills a worker stuck in a batch.

Contracts (the pool applies them):

- A dead worker is restarted after a back-off that doubles per consecutive crash (``restart_backoff_s`` up to
  ``max_backoff_s``). After ``crash_limit`` crashes with no batch completed in between, the version is
  *failed* with the cause; nothing restarts until :meth:`CrashTracker.reset` (the management API's PUT).
- Only crashes not tied to a request count: a worker that dies while running a batch
  (:meth:`CrashTracker.request_crashed`) is restarted after ``restart_backoff_s`` and its batch's requests
  answer for it, so a request that crashes the model (sent by anyone, as often as they like) costs that
  request, never the version.
- A batch unanswered past ``response_timeout_s`` gets its worker SIGKILLed; its death is then reported and
  handled like any other crash (the batch is retried once by the pool).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from .pool_settings import PoolSettings
from .worker_process import WorkerProcess

__all__ = ["CrashTracker", "watch_for_hung_workers"]

log = logging.getLogger(__name__)


class CrashTracker:
    """Consecutive crashes of one pool's workers, and whether they add up to a failed version."""

    def __init__(self, settings: PoolSettings) -> None:
        self._settings = settings
        self.crashes = 0
        self.failure: str | None = None

    def crashed(self, cause: str) -> float | None:
        """Count a crash; the delay before its replacement starts, or None when the version is now failed."""
        self.crashes += 1
        log.error("model %s: %s", self._settings.model, cause)
        if self.crashes >= self._settings.crash_limit:
            self.fail(
                f"model '{self._settings.model}' is unavailable: its workers keep dying "
                f"({self.crashes} in a row); last: {cause}"
            )
            return None
        doubled: float = self._settings.restart_backoff_s * 2 ** (self.crashes - 1)
        return min(self._settings.max_backoff_s, doubled)

    def request_crashed(self, cause: str) -> float:
        """A worker died running a batch: logged, not counted; the delay before its replacement starts."""
        log.error(
            "model %s: %s (while running a batch: its requests are retried or isolated)",
            self._settings.model,
            cause,
        )
        return self._settings.restart_backoff_s

    def batch_completed(self) -> None:
        """A worker answered: the crashes so far were not a loop."""
        self.crashes = 0

    def fail(self, reason: str) -> None:
        """Mark the version failed with ``reason`` (logged)."""
        self.failure = reason
        log.error("%s", reason)

    def reset(self) -> None:
        """A fresh start (the operator scaled the pool): no failure, no crashes counted."""
        self.failure, self.crashes = None, 0


async def watch_for_hung_workers(
    model: str, workers: Callable[[], Iterable[WorkerProcess]], closing: Callable[[], bool], timeout_s: float
) -> None:
    """Until ``closing()``: kill every worker whose batch has gone unanswered for ``timeout_s`` (one timer per
    pool, not one per batch)."""
    interval = min(1.0, timeout_s / 4)
    while not closing():
        await asyncio.sleep(interval)
        now = time.monotonic()
        for process in list(workers()):
            if process.kill_if_hung(now):
                log.error("model %s: worker pid %d stuck in a batch; killed", model, process.pid)
