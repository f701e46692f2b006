"""``--memory-budget``: how much memory the loaded model versions may hold, and which idle ones make room.

Every load goes through :meth:`MemoryBudget.admit`, one at a time (the decisions must see each other's
outcome): when the version's estimate (its model files' size) does not fit beside what the serving versions
hold, the least recently used idle versions are evicted first (no request in flight, and not of a model that
is being loaded or changed); when it still does not fit, the load fails with the numbers. After the load the
version's own memory is measured and, if it turned out larger than estimated, more idle versions make room.

How a version's memory is measured (and its limits):

* process workers: the sum of the workers' PSS (proportional set size, psutil; RSS where PSS cannot be read),
  measured again at every decision, so a pool that scaled is counted as it is now. Pages shared by all
  workers (the Python interpreter, ONNX Runtime's code) are split between them, so the sum is close to what
  unloading the version gives back.
* thread instances (in the server process): the growth of the server's RSS across the load, never less than
  the model files' size. Loads are serialized, so another load does not blur it, but requests running at the
  same time can; freed memory the allocator keeps for reuse can make a later load look smaller than it is
  (hence the floor), and threads added by scaling afterwards are not counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..observability.metrics import ServerMetrics
from .loaded_version import LoadedVersion

__all__ = ["EVICTED_REASON", "Candidate", "MemoryBudget", "files_size"]

logger = logging.getLogger(__name__)

EVICTED_REASON = "evicted (memory budget)"
_MB = 2**20


@dataclass(frozen=True, slots=True)
class Candidate:
    """A serving version as the budget sees it; ``evictable`` is False while its model is being changed."""

    version: LoadedVersion
    evictable: bool


def _size_text(size: int) -> str:
    return f"{size / _MB:.1f} MB"


def _workers_memory(version: LoadedVersion) -> int | None:
    """The summed PSS (else RSS) of the version's worker processes, or None for thread instances."""
    pids = [w.pid for w in version.executor.status().workers if w.pid > 0]
    if not pids:
        return None
    total = 0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            try:
                total += process.memory_full_info().pss
            except (psutil.AccessDenied, AttributeError):
                total += process.memory_info().rss
        except psutil.NoSuchProcess:  # restarting: counted at the next decision
            continue
    return total


class MemoryBudget:
    """The budget and the measured memory of every version loaded under it (see the module docstring)."""

    def __init__(self, limit: int, metrics: ServerMetrics | None = None) -> None:
        self.limit = limit
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._thread_bytes: dict[int, int] = {}  # id(LoadedVersion) -> RSS growth of its load
        self._process = psutil.Process()

    def memory_of(self, version: LoadedVersion) -> int:
        """The version's memory now: its workers' PSS, or what its load added to the server's RSS."""
        measured = _workers_memory(version)
        if measured is None:
            return self._thread_bytes.get(id(version), 0)
        return measured

    def _measure(self, version: LoadedVersion) -> int:
        """:meth:`memory_of`, also set in the version's ``modelport_model_memory_bytes``."""
        size = version.memory_bytes = self.memory_of(version)
        if self._metrics is not None:
            self._metrics.record_version_memory(version.spec.name, str(version.spec.version), size)
        return size

    def forget(self, version: LoadedVersion) -> None:
        """Drop what was measured for a version that no longer serves."""
        self._thread_bytes.pop(id(version), None)
        if self._metrics is not None:
            self._metrics.record_version_memory(version.spec.name, str(version.spec.version), None)

    async def admit(
        self,
        what: str,
        estimate: int,
        serving: Callable[[], list[Candidate]],
        evict: Callable[[LoadedVersion], Awaitable[None]],
        load: Callable[[], Awaitable[LoadedVersion | str]],
    ) -> LoadedVersion | str:
        """``load()`` once ``estimate`` bytes fit (evicting idle versions), or the reason it cannot.

        ``what`` names the version for messages; ``serving()`` lists the versions serving now; ``evict(v)``
        stops serving ``v`` and returns once its executor closed."""
        async with self._lock:
            if estimate > self.limit:
                return (
                    f"{what} needs at least {_size_text(estimate)} (its model files), more than the whole "
                    f"--memory-budget of {_size_text(self.limit)}"
                )
            refused = await self._make_room(what, estimate, serving, evict, keep=None)
            if refused is not None:
                return refused
            before = self._process.memory_info().rss
            outcome = await load()
            if not isinstance(outcome, LoadedVersion):
                return outcome
            if _workers_memory(outcome) is None:
                grown = self._process.memory_info().rss - before
                self._thread_bytes[id(outcome)] = max(grown, estimate)
            size = self._measure(outcome)
            logger.info("%s holds %s (budget %s)", what, _size_text(size), _size_text(self.limit))
            # Measured larger than estimated: make room after the fact, the new version staying.
            await self._make_room(what, 0, lambda: [*serving(), Candidate(outcome, False)], evict, outcome)
            return outcome

    async def _make_room(
        self,
        what: str,
        needed: int,
        serving: Callable[[], list[Candidate]],
        evict: Callable[[LoadedVersion], Awaitable[None]],
        keep: LoadedVersion | None,
    ) -> str | None:
        """Evict idle versions, least recently used first, until ``needed`` more bytes fit; the reason when
        they cannot (nothing is evicted then)."""
        candidates = [c for c in serving() if c.version is not keep]
        sizes = {id(c.version): self._measure(c.version) for c in candidates}
        used = sum(sizes.values()) + (self.memory_of(keep) if keep is not None else 0)
        if used + needed <= self.limit:
            return None
        idle = sorted(
            (c.version for c in candidates if c.evictable and c.version.in_flight == 0),
            key=lambda v: v.last_used,
        )
        chosen: list[LoadedVersion] = []
        for version in idle:
            if used + needed <= self.limit:
                break
            chosen.append(version)
            used -= sizes[id(version)]
        if used + needed > self.limit:
            if keep is not None:  # already loaded: evict what can go, and say so
                logger.warning("%s: the loaded versions hold more than the memory budget", what)
            else:
                return (
                    f"{what} needs about {_size_text(needed)}, and the versions that stay loaded (busy, or "
                    f"of a model being loaded) hold {_size_text(used)} of the --memory-budget of "
                    f"{_size_text(self.limit)}"
                )
        for version in chosen:
            idle_s = time.monotonic() - version.last_used
            logger.info(
                "model %s version %d: evicted (memory budget) to load %s, idle %.1f s",
                version.spec.name,
                version.spec.version,
                what,
                idle_s,
            )
            if self._metrics is not None:
                self._metrics.record_eviction(version.spec.name, str(version.spec.version))
            await evict(version)
            self.forget(version)
        return None


def files_size(folder: Path) -> int:
    """The bytes of the regular files in ``folder`` (a version's model and its external data): the least
    its loaded session holds, the estimate a load is admitted on. Blocking."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and not p.is_symlink())
