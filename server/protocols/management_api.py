"""The management API, shaped like TorchServe's, on its own port (default 127.0.0.1:8081).

- ``GET /models``: every model the repository or the server knows: ``{"models": [{"modelName", "modelUrl"}]}``
- ``GET /models/M``: one entry per version: status (READY/UNAVAILABLE with the reason), workers (id, pid,
  state, start time, uptime, batches served), queue depth and capacity, and the effective config.
- ``PUT /models/M?min_worker=&max_worker=&synchronous=true``: set every serving version's worker bounds
  (``max_worker`` defaults to ``min_worker``); synchronous waits for the workers, else 202 at once. The
  bounds are checked as config.yaml's ``workers.min``/``workers.max`` are (same code, same host-derived cap).
- ``POST /models?url=NAME&initial_workers=N``: load model ``NAME`` *from the repository* (a bare directory
  name; URLs and paths are refused) with ``N`` workers; 409 when it is already loaded.
- ``DELETE /models/M`` or ``/models/M/V``: unload (in-flight requests finish first).

With a token configured every request needs ``Authorization: Bearer TOKEN`` (the server refuses to bind this
API beyond loopback without one). Errors are ``{"code", "type", "message"}`` with the status from
:data:`MANAGEMENT_STATUS`, the one table.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    AlreadyExists,
    DeadlineExceeded,
    InvalidInput,
    ModelLoadFailed,
    ModelNotFound,
    ModelNotReady,
    ModelportError,
    PayloadTooLarge,
    PermissionDenied,
    QueueFull,
    ServerUnavailable,
    Unauthenticated,
    Unsupported,
)
from ..model_config import ModelConfigError, check_worker_bounds
from ..names import NAME_RULE, check_model_name, check_path_names
from ..observability.recording import internal_error
from ..repository.model_manager import LoadedVersion, ModelManager
from .management_access import ManagementAccess
from .management_cors import allow_console
from .torchserve_defaults import DefaultVersions, normalise_version
from .torchserve_management import model_page, torchserve_fields

__all__ = ["MANAGEMENT_STATUS", "create_management_app", "management_status"]

log = logging.getLogger(__name__)

# TorchServe's statuses, by exception class: the error codes cannot say it, since an unknown model is
# INVALID_ARG to the inference protocols (Triton answers it with 400) but a 404 here. An error takes the entry
# of its class or else of its nearest base class, so every ModelportError has one.
MANAGEMENT_STATUS: dict[type[ModelportError], int] = {
    ModelNotFound: 404,
    AlreadyExists: 409,  # TorchServe: registering a model that is registered
    InvalidInput: 400,
    ModelLoadFailed: 400,  # as the inference protocols answer it (Triton: 400)
    ModelNotReady: 503,
    QueueFull: 503,
    ServerUnavailable: 503,
    Unsupported: 501,
    DeadlineExceeded: 504,
    PayloadTooLarge: 413,
    Unauthenticated: 401,
    PermissionDenied: 403,
    ModelportError: 500,
}
# The routes that name a model (and maybe a version), matched on the path as the client sent it.
_NAMED_PATH = re.compile(rb"/models/([^/?]*)(?:/([^/?]*))?(?:[/?].*)?", re.DOTALL)


def _check_path_names(method: str, raw_path: bytes) -> None:
    """The model name and version of a ``/models/M[/V]`` path, each segment percent-decoded on its own,
    checked by :mod:`names` before routing (``GET /models/M/all`` describes every version)."""
    match = _NAMED_PATH.fullmatch(raw_path)
    if match is None:
        return
    name, version = match.groups()
    if version is not None:  # TorchServe writes version 2 as 2.0
        version = normalise_version(version.decode("latin-1")).encode("latin-1")
    check_path_names(name, version, also_versions=("all",) if method == "GET" else ())


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def _error(status: int, kind: str, message: str) -> Response:
    return _json({"code": status, "type": kind, "message": message}, status)


def management_status(error: ModelportError) -> int:
    """The status ``error`` is answered with: :data:`MANAGEMENT_STATUS` of its class or nearest base class."""
    return next(MANAGEMENT_STATUS[kind] for kind in type(error).__mro__ if kind in MANAGEMENT_STATUS)


def _int_param(request: Request, key: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"query parameter '{key}': '{raw}' is not an integer") from None
    if value < 0:
        raise InvalidInput(f"query parameter '{key}': {value} must be >= 0")
    return value


def _flag(request: Request, key: str) -> bool:
    return request.query_params.get(key, "false").lower() in ("true", "1", "yes")


def _version_json(loaded: LoadedVersion) -> dict[str, Any]:
    spec = loaded.spec
    entry: dict[str, Any] = {
        "modelName": spec.name,
        "modelVersion": str(spec.version),
        "modelUrl": spec.name,
        "runtime": "onnxruntime",
        "batchSize": spec.config.max_batch_size,
        "status": "READY",
    }
    executor = loaded.executor
    state = executor.status()
    config = executor.effective_config()
    now = time.time()
    entry.update(
        minWorkers=state.min_workers,
        maxWorkers=state.max_workers,
        maxBatchDelay=config["dynamic_batching"]["max_queue_delay_us"],
        workers=[
            {
                "id": str(w.id),
                "kind": w.kind,
                "pid": w.pid,
                "status": w.state,
                "startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(w.started_at)),
                "uptimeSeconds": round(now - w.started_at, 3),
                "batches": w.batches,
            }
            for w in state.workers
        ],
        jobQueueStatus={
            "remainingCapacity": max(0, state.queue_capacity - state.queue_depth),
            "pendingRequests": state.queue_depth,
            "batchesInFlight": state.batches_in_flight,
        },
        config=config,
    )
    if loaded.memory_bytes is not None:  # measured under --memory-budget
        entry.update(memoryBytes=loaded.memory_bytes)
    if state.failure is not None:
        entry.update(status="UNAVAILABLE", reason=state.failure)
    return torchserve_fields(entry, loaded)


class _Routes:
    def __init__(self, manager: ModelManager, defaults: DefaultVersions) -> None:
        self._manager = manager
        self._defaults = defaults

    def _versions(self, name: str, version: str = "") -> list[LoadedVersion]:
        """The serving versions of ``name``, only ``version`` when given; :class:`ModelNotFound` if none."""
        versions = [v for v in self._manager.serving() if v.spec.name == name]
        if not versions:
            reasons = [e.reason for e in self._manager.index() if e.name == name]
            if not reasons:
                raise ModelNotFound(f"model '{name}' is not registered (GET /models lists the models)")
            raise ModelNotFound(
                f"model '{name}' has no serving version: {'; '.join(r for r in reasons if r)}"
            )
        if version:
            version = normalise_version(version)
            versions = [v for v in versions if str(v.spec.version) == version]
            if not versions:
                raise ModelNotFound(f"model '{name}' has no serving version {version}")
        return versions

    async def list_models(self, request: Request) -> Response:
        names = sorted({entry.name for entry in self._manager.index()})
        limit = _int_param(request, "limit")
        return _json(model_page(names, limit, request.query_params.get("next_page_token")))

    async def set_default(self, request: Request, model_name: str, model_version: str) -> Response:
        self._versions(model_name)
        version = self._defaults.set(model_name, model_version)
        return _json(
            {"status": f'Default version successfully updated for model "{model_name}" to "{version}"'}
        )

    async def describe(self, request: Request, model_name: str, model_version: str = "") -> Response:
        # TorchServe: /models/M describes the default version, /models/M/all every one.
        if model_version == "all":
            wanted = ""
        elif model_version:
            wanted = model_version
        else:
            wanted = str(self._defaults.default_of(model_name) or "")
        versions = self._versions(model_name, wanted)
        unavailable = [
            {"modelName": e.name, "modelVersion": e.version, "status": e.state, "reason": e.reason}
            for e in self._manager.index()
            if e.name == model_name and e.state != "READY" and not model_version
        ]
        return _json([_version_json(v) for v in versions] + unavailable)

    async def scale(self, request: Request, model_name: str, model_version: str = "") -> Response:
        versions = self._versions(model_name, model_version)
        minimum = _int_param(request, "min_worker", 1)
        assert minimum is not None
        maximum = _int_param(request, "max_worker", minimum)
        assert maximum is not None
        _check_workers(minimum, maximum, f"PUT /models/{model_name}", ("min_worker", "max_worker"))
        work = asyncio.gather(*(v.executor.scale(min_workers=minimum, max_workers=maximum) for v in versions))
        message = f"Workers scaled to min {minimum}, max {maximum} for model: {model_name}"
        if _flag(request, "synchronous"):
            await work
            return _json({"status": message})
        task = asyncio.ensure_future(work)
        task.add_done_callback(_log_failure)
        return _json({"status": f"Processing worker updates... ({message})"}, 202)

    async def register(self, request: Request) -> Response:
        url = request.query_params.get("url", "")
        if not url:
            raise InvalidInput("query parameter 'url': give the name of a model directory in the repository")
        try:
            check_model_name(url, field="query parameter 'url'")
        except InvalidInput:
            raise InvalidInput(
                f"query parameter 'url': {url[:80]!a} is not a model name; only models already in the "
                f"repository can be registered, by their directory name (no URLs, no paths): {NAME_RULE}"
            ) from None
        initial = _int_param(request, "initial_workers")
        if initial:  # checked before anything loads, and before the conflict: a bad request is a 400 first
            _check_workers(initial, initial, "POST /models", ("initial_workers", "initial_workers"))
        serving = self._manager.ready_versions(url)
        if serving:
            raise AlreadyExists(
                f"model '{url}' is already registered (serving version {', '.join(map(str, serving))}); "
                f"DELETE /models/{url} first to load it again, or PUT /models/{url} to change its workers"
            )
        await self._manager.load(url)
        if initial:
            for version in self._versions(url):
                state = version.executor.status()
                await version.executor.scale(min_workers=initial, max_workers=max(initial, state.max_workers))
        return _json(
            {
                "status": f'Model "{url}" Version: {",".join(map(str, self._manager.ready_versions(url)))} '
                "registered"
            }
        )

    async def unregister(self, request: Request, model_name: str, model_version: str = "") -> Response:
        versions = self._versions(model_name)
        if model_version:
            self._versions(model_name, model_version)  # that version must be serving
            if len(versions) > 1:
                serving = ", ".join(str(v.spec.version) for v in versions)
                raise InvalidInput(
                    f"model '{model_name}' serves versions {serving}; one version cannot be "
                    "unregistered alone: narrow version_policy in its config.yaml, or DELETE /models/"
                    f"{model_name}"
                )
        await self._manager.unload(model_name)
        return _json({"status": f'Model "{model_name}" unregistered'})


def _check_workers(minimum: int, maximum: int, source: str, names: tuple[str, str]) -> None:
    """Worker bounds from a query, checked by the same code and ranges as config.yaml's ``workers``."""
    try:
        check_worker_bounds(minimum, maximum, source=source, names=names)
    except ModelConfigError as error:
        raise InvalidInput(str(error)) from None


def _description(app: FastAPI) -> Any:
    async def description(request: Request) -> Response:
        return _json(app.openapi())  # TorchServe's API description: the OpenAPI document

    return description


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("scaling workers failed: %s", error, exc_info=error)


def create_management_app(
    manager: ModelManager,
    *,
    token: str | None,
    console_port: int | None = None,
    defaults: DefaultVersions | None = None,
) -> FastAPI:
    """The management FastAPI application; ``token`` (if any) is required as a Bearer token, and without
    one only loopback clients are answered (:class:`ManagementAccess`, the rule REST and gRPC repository
    load and unload follow too)."""
    app = FastAPI(title="modelport management", docs_url=None, redoc_url=None)
    routes = _Routes(manager, defaults if defaults is not None else DefaultVersions(manager))
    access = ManagementAccess(token)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        try:
            access.check(
                "the management API",
                authorization=request.headers.get("authorization"),
                client_host=request.client.host if request.client else None,
            )
            _check_path_names(request.method, request.scope.get("raw_path") or request.url.path.encode())
            response: Response = await call_next(request)
        except ModelportError as error:
            return _error(management_status(error), type(error).__name__, error.message)
        except Exception as error:
            what = f"management request {request.method} {request.url.path}"
            return _error(500, "InternalServerError", internal_error(log, what, error).message)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return _error(error.status_code, "HTTPException", str(error.detail))

    app.add_api_route("/models", routes.list_models, methods=["GET"])
    app.add_api_route("/models", routes.register, methods=["POST"])
    app.add_api_route("/models/{model_name}", routes.describe, methods=["GET"])
    app.add_api_route("/models/{model_name}/{model_version}", routes.describe, methods=["GET"])
    app.add_api_route("/models/{model_name}", routes.scale, methods=["PUT"])
    app.add_api_route("/models/{model_name}/{model_version}", routes.scale, methods=["PUT"])
    app.add_api_route("/models/{model_name}/{model_version}/set-default", routes.set_default, methods=["PUT"])
    app.add_api_route("/api-description", _description(app), methods=["GET"], include_in_schema=False)
    app.add_api_route("/", _description(app), methods=["OPTIONS"], include_in_schema=False)
    app.add_api_route("/models/{model_name}", routes.unregister, methods=["DELETE"])
    app.add_api_route("/models/{model_name}/{model_version}", routes.unregister, methods=["DELETE"])
    allow_console(app, token=token is not None, console_port=console_port)  # the console on console_port
    return app
