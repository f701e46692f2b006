"""Which model versions are loaded, their states, and how they change (startup, poll, explicit load/unload).

Changing a model never drops a request: the new versions are loaded first, then swapped in with one
assignment on the event loop, and the replaced ones are closed only after their in-flight requests finished
(bounded by the drain timeout). A version that fails to load leaves whatever served before still serving.
Every executor comes from the single ``make_executor`` factory that ``app.py`` passes in. ``VersionSpec``,
``LoadedVersion``, ``ModelIndexEntry`` and ``ExecutorFactory`` live in ``loaded_version`` and are re-exported
here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..cgroup_limits import budget_bytes
from ..config_files import UnreadableFile, require_regular_file
from ..errors import DeadlineExceeded, ModelLoadFailed, ModelNotFound, ModelNotReady
from ..executor import VersionSpec
from ..graph_ops import check_cacheable
from ..inference import Signature
from ..model_config import ModelConfig, ModelConfigError, ResolvedConfig, resolve_config
from ..names import check_version
from ..observability.metrics import ServerMetrics
from ..response_cache import ResponseCache
from ..settings import ServerSettings
from ..workers.session import ModelLoadError, read_signature
from .folders import ModelSource, Repository, Stamp
from .loaded_version import ExecutorFactory, LoadedVersion, ModelIndexEntry, VersionCache
from .memory_budget import EVICTED_REASON, Candidate, MemoryBudget, files_size

__all__ = [
    "ExecutorFactory",
    "LoadedVersion",
    "ModelIndexEntry",
    "ModelManager",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class _Model:
    versions: dict[int, LoadedVersion] = field(default_factory=dict)  # serving now
    failed: dict[int, tuple[tuple[Stamp, Stamp], str]] = field(default_factory=dict)  # attempt, reason
    loading: set[int] = field(default_factory=set)
    reason: str = ""  # why the model as a whole does not serve (or did not reload)
    fingerprint: object = None  # what was last applied from disk
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _fingerprint(source: ModelSource) -> object:
    return (source.config_stamp, tuple(sorted((v, s.stamp) for v, s in source.versions.items())))


class ModelManager:
    """Holds the loaded versions of every model and changes them as the repository or an operator asks."""

    def __init__(
        self,
        *,
        repository: Repository,
        settings: ServerSettings,
        make_executor: ExecutorFactory,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._repository = repository
        self._settings = settings
        self._make_executor = make_executor
        self._metrics = metrics
        self._models: dict[str, _Model] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._budget: MemoryBudget | None = None
        if settings.memory_budget is not None:
            self._budget = MemoryBudget(budget_bytes(settings.memory_budget), metrics)
        self._on_demand: dict[str, asyncio.Task[None]] = {}  # one shared load per model (--load-on-demand)
        self._cache = ResponseCache(settings.cache_size) if settings.cache_size else None
        if self._cache is not None and metrics is not None:
            metrics.watch_cache(self._cache.usage)

    # ----- startup, polling, explicit control -----------------------------------------------------------

    async def start(self) -> None:
        """Load what the model-control mode says to load at startup (concurrently)."""
        names = self._repository.model_names()
        if self._settings.model_control == "explicit":
            wanted = set(self._settings.load_models)
            for missing in sorted(wanted - set(names) - {"*"}):
                logger.error("--load-model %s: no such model in %s", missing, self._repository.root)
            names = names if "*" in wanted else [n for n in names if n in wanted]
        # A task group, not gather: if one model's load fails unexpectedly, the others are cancelled and
        # awaited instead of loading on unattended while the server shuts down.
        async with asyncio.TaskGroup() as group:
            for name in names:
                group.create_task(self._read_and_apply(name))

    async def _read_and_apply(self, name: str) -> None:
        # Read off the event loop: the listeners already answer (health, readiness false) while models load.
        await self._apply(name, await asyncio.to_thread(self._read, name))

    async def poll_forever(self, interval: float) -> None:
        """Poll mode: rescan every ``interval`` seconds and apply what changed, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.poll_once()
            except Exception:
                logger.exception("repository poll failed; trying again in %.1f s", interval)

    async def poll_once(self) -> None:
        """Apply every model whose files changed since the last scan; removed models are unloaded."""
        sources = await asyncio.to_thread(self._repository.scan)
        changed = [
            (name, source)
            for name, source in sources.items()
            if name not in self._models or self._models[name].fingerprint != _fingerprint(source)
        ]
        removed = [(name, None) for name in self._models if name not in sources]
        await asyncio.gather(*(self._apply(name, source) for name, source in [*changed, *removed]))

    async def load(self, name: str, *, config: ModelConfig | None = None, root: Path | None = None) -> None:
        """Explicit mode: (re)load ``name`` from the repository, or from ``root`` and/or with ``config``.

        Raises :class:`ModelNotFound` for an unknown model and :class:`ModelLoadFailed` when a version it
        asked for did not load, even while other (or the previous) versions still serve, with the reasons.
        """
        repository = Repository(root) if root is not None else self._repository
        source = await asyncio.to_thread(self._read_from, repository, name)
        if source is None:
            raise ModelNotFound(f"failed to load '{name}': no model directory '{name}' in the repository")
        if source.refused is not None:  # no config given with the request makes it servable
            raise ModelLoadFailed(f"failed to load '{name}': {source.refused}")
        if config is not None:
            source = source.with_config(config)
        await self._apply(name, source, force=True)
        model = self._models[name]
        if not model.versions:
            raise ModelLoadFailed(f"failed to load '{name}': {self._reasons(model)}")
        # Forced: every entry of model.failed is from this attempt.
        if model.reason or model.failed:
            serving = ", ".join(map(str, sorted(model.versions)))
            raise ModelLoadFailed(
                f"failed to load '{name}' (still serving version {serving}): {self._reasons(model)}"
            )

    async def unload(self, name: str) -> None:
        """Explicit mode: stop serving every version of ``name`` (in-flight requests finish first)."""
        if name not in self._models and name not in self._repository.model_names():
            raise ModelNotFound(f"failed to unload '{name}': no such model")
        await self._apply(name, None)

    async def close(self, *, drain_timeout: float) -> None:
        """Retire every version (in-flight requests finish within ``drain_timeout``)."""
        for task in list(self._on_demand.values()):  # a load on demand stops what it started
            task.cancel()
        await asyncio.gather(*self._on_demand.values(), return_exceptions=True)
        versions = [v for model in self._models.values() for v in model.versions.values()]
        for model in self._models.values():
            model.versions = {}
        await asyncio.gather(*(v.retire(drain_timeout) for v in versions), *self._retiring)

    # ----- lookups for the data plane --------------------------------------------------------------------

    def get(self, name: str, version: str = "") -> LoadedVersion:
        """The serving version (``""`` = the highest one whose executor has not failed).

        Raises :class:`ModelNotFound` (unknown model or version) or :class:`ModelNotReady` (not loaded, or
        its executor failed: the message is the cause).
        """
        loaded = self._lookup(name, version)
        if loaded.failure is not None:
            raise ModelNotReady(loaded.failure)
        return loaded

    def loads_on_demand(self, name: str) -> bool:
        """Whether a request for ``name`` that is not ready may load it (``--load-on-demand``, a model of the
        repository)."""
        return self._settings.load_on_demand and name in self._repository.model_names()

    async def get_on_demand(self, name: str, version: str, *, deadline: float | None) -> LoadedVersion:
        """Like :meth:`get`; with ``--load-on-demand``, a known model that is not ready is loaded first (one
        load shared by concurrent callers), waiting until ``deadline`` (monotonic; None: the whole load).

        Raises :class:`DeadlineExceeded` when the deadline passes first (the load goes on)."""
        try:
            return self.get(name, version)
        except (ModelNotReady, ModelNotFound) as error:
            never_loaded = isinstance(error, ModelNotFound) and name not in self._models
            if not (never_loaded or isinstance(error, ModelNotReady)) or not self.loads_on_demand(name):
                raise
        task = self._on_demand.get(name)
        if task is None:
            task = asyncio.create_task(self._read_and_apply(name))
            self._on_demand[name] = task
            task.add_done_callback(lambda done: self._on_demand_done(name, done))
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise DeadlineExceeded(
                f"model '{name}' is loading on demand and was not ready within the request's timeout"
            ) from None
        return self.get(name, version)

    def _on_demand_done(self, name: str, task: asyncio.Task[None]) -> None:
        self._on_demand.pop(name, None)
        if not task.cancelled() and task.exception() is not None:  # retrieved: waiters may have timed out
            logger.error("model %s: load on demand failed: %s", name, task.exception())

    def _lookup(self, name: str, version: str) -> LoadedVersion:
        """Like :meth:`get`, but a loaded version whose executor failed is returned too."""
        model = self._models.get(name)
        if model is None:
            raise ModelNotFound(f"Request for unknown model: '{name}' is not found")
        if not version:
            if not model.versions:
                raise ModelNotReady(f"model '{name}' has no ready version: {self._reasons(model)}")
            healthy = [v for v, loaded in model.versions.items() if loaded.failure is None]
            return model.versions[max(healthy or model.versions)]
        check_version(version, field=f"model '{name}': version")  # what int() below can take
        loaded = model.versions.get(int(version))
        if loaded is not None:
            return loaded
        if int(version) in model.failed or int(version) in model.loading:
            raise ModelNotReady(f"model '{name}' version {version} is not ready: {self._reasons(model)}")
        raise ModelNotFound(f"Request for unknown model: '{name}' version {version} is not found")

    def ready_versions(self, name: str) -> list[int]:
        """Versions of ``name`` serving now (loaded, executor not failed), ascending."""
        model = self._models.get(name)
        return sorted(v for v, loaded in model.versions.items() if loaded.failure is None) if model else []

    def serving(self) -> list[LoadedVersion]:
        """Every serving version, by model name then version."""
        return [
            model.versions[v] for name, model in sorted(self._models.items()) for v in sorted(model.versions)
        ]

    def index(self) -> list[ModelIndexEntry]:
        """Every model in the repository or in memory, one row per known version."""
        rows: list[ModelIndexEntry] = []
        for name in sorted(set(self._repository.model_names()) | set(self._models)):
            model = self._models.get(name)
            if model is None:
                rows.append(ModelIndexEntry(name, "", "UNAVAILABLE", "not loaded"))
                continue
            states: dict[int, tuple[str, str]] = {}
            for version, (_, reason) in model.failed.items():
                states[version] = ("UNAVAILABLE", reason)
            for version in model.loading:
                states[version] = ("LOADING", "")
            for version, loaded in model.versions.items():
                if loaded.failure is not None:
                    states[version] = ("UNAVAILABLE", loaded.failure)
                    continue
                failed = model.failed.get(version)
                note = f"still serving the previous load: {failed[1]}" if failed else model.reason
                states[version] = ("READY", note)
            if not states:
                rows.append(ModelIndexEntry(name, "", "UNAVAILABLE", model.reason or "unloaded"))
            rows.extend(ModelIndexEntry(name, str(v), *states[v]) for v in sorted(states))
        return rows

    # ----- applying changes -----------------------------------------------------------------------------

    def _read(self, name: str) -> ModelSource | None:
        return self._read_from(self._repository, name)

    @staticmethod
    def _read_from(repository: Repository, name: str) -> ModelSource | None:
        return repository.read_model_or_error(name)

    @staticmethod
    def _reasons(model: _Model) -> str:
        reasons = [f"version {v}: {reason}" for v, (_, reason) in sorted(model.failed.items())]
        return "; ".join(([model.reason] if model.reason else []) + reasons) or "unloaded"

    async def _apply(self, name: str, source: ModelSource | None, *, force: bool = False) -> None:
        model = self._models.setdefault(name, _Model())
        async with model.lock:
            if source is None:
                self._swap(model, {})
                model.failed.clear()
                model.reason = "unloaded" if self._settings.model_control == "explicit" else "removed"
                model.fingerprint = None
                if self._settings.model_control != "explicit":
                    del self._models[name]
                logger.info("model %s: unloaded", name)
                return
            model.fingerprint = _fingerprint(source)
            if source.config is None:
                logger.error("model %s: %s", name, source.config_error or "invalid config.yaml")
                model.reason = _without_root(source.config_error or "invalid config.yaml", source)
                return
            wanted = source.served_versions()
            if not wanted:
                model.reason = (
                    f"no version directory with a {source.directory.name}/<version>/model.onnx"
                    if not source.versions
                    else f"the version policy selects none of the versions {sorted(source.versions)}"
                )
                logger.error("model %s: %s", name, model.reason)
                return
            todo = [v for v in wanted if force or self._needs_load(model, source, v)]
            model.loading.update(todo)
            try:
                results = await asyncio.gather(*(self._load_version(source, v) for v in todo))
            finally:
                model.loading.difference_update(todo)
            new = {v: loaded for v, loaded in model.versions.items() if v in wanted}
            attempt_of = {v: (source.versions[v].stamp, source.config_stamp) for v in todo}
            for version, outcome in zip(todo, results, strict=True):
                if isinstance(outcome, LoadedVersion):
                    new[version] = outcome
                    model.failed.pop(version, None)
                else:
                    model.failed[version] = (attempt_of[version], _without_root(outcome, source))
            for version in [v for v in model.failed if v not in wanted]:
                del model.failed[version]
            if not any(isinstance(r, LoadedVersion) for r in results) and todo:
                # Nothing new loaded: keep serving everything that served before.
                new = {**model.versions, **new}
            model.reason = ""
            self._swap(model, new)

    def _needs_load(self, model: _Model, source: ModelSource, version: int) -> bool:
        attempt = (source.versions[version].stamp, source.config_stamp)
        loaded = model.versions.get(version)
        if loaded is not None:
            return loaded.stamp != attempt
        failed = model.failed.get(version)
        return failed is None or failed[0] != attempt or failed[1] == EVICTED_REASON

    def _swap(self, model: _Model, new: dict[int, LoadedVersion]) -> None:
        old = model.versions
        model.versions = new
        for version, loaded in old.items():
            if new.get(version) is not loaded:
                if self._budget is not None:
                    self._budget.forget(loaded)
                task = asyncio.create_task(loaded.retire(self._settings.drain_timeout))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)

    async def _load_version(self, source: ModelSource, version: int) -> LoadedVersion | str:
        """The loaded version, or the reason it failed (logged, and counted in the metrics)."""
        started = time.monotonic()
        if self._budget is None:
            loaded = await self._open_version(source, version)
        else:
            where = source.versions[version].path
            loaded = await self._budget.admit(
                f"model {source.name} version {version}",
                await asyncio.to_thread(files_size, where.parent),
                self._budget_candidates,
                self._evict,
                lambda: self._open_version(source, version),
            )
        if self._metrics is not None:
            ok = isinstance(loaded, LoadedVersion)
            duration = time.monotonic() - started
            self._metrics.record_model_load(source.name, str(version), duration_s=duration, ok=ok)
        return loaded

    def _budget_candidates(self) -> list[Candidate]:
        """Every serving version; those of a model being loaded or changed (its lock held) stay."""
        return [
            Candidate(loaded, not model.lock.locked())
            for model in self._models.values()
            for loaded in model.versions.values()
        ]

    async def _evict(self, loaded: LoadedVersion) -> None:
        """Stop serving ``loaded`` for the memory budget (the index says so) and close its executor."""
        model = self._models[loaded.spec.name]
        if model.versions.get(loaded.spec.version) is loaded:
            model.versions = {v: other for v, other in model.versions.items() if other is not loaded}
            model.failed[loaded.spec.version] = (loaded.stamp, EVICTED_REASON)
        await loaded.retire(self._settings.drain_timeout)

    async def _open_version(self, source: ModelSource, version: int) -> LoadedVersion | str:
        assert source.config is not None
        where = source.versions[version].path
        started = time.monotonic()
        try:
            # Both read files (the graph; label files): off the event loop.
            signature, resolved = await _in_daemon_thread(
                _read_version,
                source,
                where,
                default_max_batch_size=self._settings.default_max_batch_size,
                allow_custom_ops=self._settings.allow_custom_ops,
            )
            spec = VersionSpec(source.name, version, where, resolved, signature)
            executor = self._make_executor(spec)
            try:
                await executor.start()
            except asyncio.CancelledError:  # startup interrupted by SIGTERM: stop what already started
                await executor.close(drain_timeout=0)
                raise
        except (ModelLoadError, ModelConfigError) as error:
            logger.error("model %s version %d failed to load: %s", source.name, version, error)  # noqa: TRY400
            return str(error)
        except Exception as error:
            logger.exception("model %s version %d failed to load", source.name, version)
            return f"{type(error).__name__}: {error}"
        warmup = executor.warmup
        logger.info(
            "model %s version %d ready (%s, %.0f ms%s)",
            source.name,
            version,
            signature.provider,
            (time.monotonic() - started) * 1000,
            f"; warm-up: {warmup.samples} sample(s) on {warmup.count} instance(s), {warmup.ns / 1e6:.0f} ms"
            if warmup.samples
            else "",
        )
        return LoadedVersion(
            spec, executor, (source.versions[version].stamp, source.config_stamp), self._cache_for(spec)
        )

    def _cache_for(self, spec: VersionSpec) -> VersionCache | None:
        """The version's share of the response cache, if its config enables it and the server has one."""
        if not spec.config.config.response_cache.enable:
            return None
        if self._cache is None:
            logger.warning(
                "model %s version %d: response_cache.enable is set but the server has no response cache; "
                "serving uncached (start the server with --cache-size BYTES)",
                spec.name,
                spec.version,
            )
            return None
        return self._cache.for_version(spec.name, spec.version)

    def statistics(self, name: str = "", version: str = "") -> list[dict[str, Any]]:
        """Triton's ``model_stats`` entries for every serving version, or those of one model/version."""
        if not name:
            return [v.statistics.to_json() for v in self.serving()]
        if version:
            return [self._lookup(name, version).statistics.to_json()]
        if name not in self._models:
            raise ModelNotFound(f"Request for unknown model: '{name}' is not found")
        return [v.statistics.to_json() for v in self._versions_of(name)]

    def _versions_of(self, name: str) -> Iterable[LoadedVersion]:
        model = self._models[name]
        return [model.versions[v] for v in sorted(model.versions)]


def _read_version(
    source: ModelSource, where: Path, *, default_max_batch_size: int, allow_custom_ops: bool
) -> tuple[Signature, ResolvedConfig]:
    """The graph's signature at ``where`` and the config resolved against it (label files read). Blocking.

    A custom-operator library is native code run in the server's and the workers' processes: it is refused
    before anything opens the model unless the operator allowed it (``--allow-custom-ops``), since in
    explicit mode a load request may upload both the library and the config that names it.
    """
    assert source.config is not None
    if source.config.session.custom_op_libraries and not allow_custom_ops:
        raise ModelConfigError(
            f"{source.config_file}: session.custom_op_libraries: custom operator libraries run native code "
            "in the server; start the server with --allow-custom-ops to load them"
        )
    try:  # ONNX Runtime would wait forever on a FIFO, in a thread that cannot be stopped
        require_regular_file(where)
    except UnreadableFile as error:
        raise ModelLoadError(f"{where}: {error}") from None
    if source.config.response_cache.enable:
        check_cacheable(where, config_file=source.config_file)
    signature = read_signature(
        where, model=source.name, config=source.config.session, providers=source.config.execution_providers
    )
    resolved = resolve_config(
        source.name,
        source.config,
        signature.inputs,
        signature.outputs,
        source=str(source.config_file),
        default_max_batch_size=default_max_batch_size,
    )
    return signature, resolved


async def _in_daemon_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in a daemon thread of its own, awaited; cancelling the wait abandons it.

    Unlike ``asyncio.to_thread``, a read that never ends (a model file on a hung network mount) neither
    blocks the shutdown of the default executor nor the interpreter's exit.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(outcome)  # type: ignore[arg-type]  # outcome is a T whenever error is None

    def target() -> None:
        try:
            result = function(*args, **kwargs)
        except BaseException as error:  # handed to the awaiting task
            outcome: tuple[T | None, BaseException | None] = (None, error)
        else:
            outcome = (result, None)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=target, name=f"modelport-{function.__name__}", daemon=True).start()
    return await future


def _without_root(reason: str, source: ModelSource) -> str:
    """``reason`` with the folder holding the model's directory (the repository, or an upload's scratch
    folder) cut from its paths: reasons reach clients (the repository index, error messages), and the
    server's filesystem is not theirs to see. The log keeps the full text."""
    folder = source.directory.parent
    for root in {str(folder), str(folder.resolve())}:
        reason = reason.replace(root + os.sep, "")
    return reason
