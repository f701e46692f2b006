"""The REST adapter: Open Inference Protocol (KServe v2) endpoints as Triton serves them.

Each route decodes, makes one data-plane call, and encodes. Errors are ``{"error": "..."}`` with the status
from :data:`HTTP_STATUS` (the one table); anything unexpected becomes a 500 "internal error (request id ...)"
and its traceback goes to the log. The infer route reads the raw body itself (the binary tensor extension is
not JSON) and checks the size limit before reading it.

Before any route, the model name and version of a ``/v2/models/...`` or ``/v2/repository/models/...`` path
are checked by :mod:`names` (:func:`_check_path_names`, on the path as sent). Repository load and unload are
management operations: ``repository.explicit`` does them, for clients ``management_access`` lets through.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from ..dataplane import DataPlane, ModelMetadata
from ..errors import InvalidInput, ModelportError, Unsupported
from ..inference import TensorSpec
from ..names import check_path_names
from ..repository.explicit import ExplicitControl
from ..settings import ServerSettings
from ..shared_memory import CUDA_SHARED_MEMORY_REFUSAL
from .management_access import ManagementAccess
from .rest_codec import decompress_body
from .rest_docs import add_offline_docs
from .rest_infer import (
    HTTP_STATUS,
    InferRoute,
    body_too_large,
    declared_too_large,
    error_answer,
)
from .rest_infer import JSON as _JSON
from .rest_openapi import ROUTE_DOCS, without_validation_errors
from .settings_codec import log_update_from_json, trace_update_from_json
from .tfserving_json import loads_with_non_finite
from .tfserving_rest import add_tfserving_routes
from .torchserve_api import add_torchserve_routes
from .torchserve_defaults import DefaultVersions

__all__ = ["HTTP_STATUS", "create_rest_app"]

logger = logging.getLogger(__name__)

_EMPTY_OK = Response(status_code=200)
_LIVE = Response(b'{"live":true}', media_type=_JSON)
_READY = Response(b'{"ready":true}', media_type=_JSON)

Endpoint = Callable[..., Awaitable[Response]]


def _json(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=_JSON, headers=headers)


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


def _error_response(error: BaseException) -> Response:
    """The answer to an endpoint's exception (:func:`rest_infer.error_answer`, the one mapping)."""
    status, body = error_answer(error)
    return Response(body, status_code=status, media_type=_JSON)


def _guarded(endpoint: Endpoint) -> Endpoint:
    """Answer the endpoint's exceptions with :func:`_error_response`."""

    @functools.wraps(endpoint)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return await endpoint(*args, **kwargs)
        except (Exception, asyncio.CancelledError) as error:
            return _error_response(error)

    return wrapper


def _tensor_json(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def _metadata_json(metadata: ModelMetadata) -> dict[str, Any]:
    return {
        "name": metadata.name,
        "versions": metadata.versions,
        "platform": metadata.platform,
        "inputs": [_tensor_json(t) for t in metadata.inputs],
        "outputs": [_tensor_json(t) for t in metadata.outputs],
    }


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole body (``declared``: the Content-Length header), refused with 413 as soon as it is known to
    exceed ``limit``."""
    refusal = declared_too_large(declared, limit)
    if refusal is not None:
        raise refusal
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _json_body(
    request: Request, limit: int, loads: Callable[[bytes], Any] = orjson.loads
) -> dict[str, Any]:
    headers = request.headers
    body = decompress_body(
        await _read_body(request.receive, headers.get("content-length"), limit),
        headers.get("content-encoding", ""),
        limit=limit,
    )
    if not body.strip():
        return {}
    try:
        data = loads(body)
    except (ValueError, RecursionError) as error:  # orjson's JSONDecodeError is a ValueError
        raise InvalidInput(f"request body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidInput("request body: expected a JSON object")
    return data


class _Endpoints:
    """The route handlers, bound to one data plane."""

    def __init__(
        self, dataplane: DataPlane, settings: ServerSettings, explicit: ExplicitControl | None
    ) -> None:
        self.dataplane = dataplane
        self.explicit = explicit
        self.access = ManagementAccess(settings.management_token)
        self.limit = settings.http_max_body_bytes
        self.route = InferRoute(dataplane, limit=self.limit)

    async def server_metadata(self) -> Response:
        metadata = self.dataplane.server_metadata()
        return _json({"name": metadata.name, "version": metadata.version, "extensions": metadata.extensions})

    # KServe's servers answer health with a body (its SDK reads ``live``/``ready``); Triton's clients read
    # only the status, so both work.
    async def live(self) -> Response:
        return _LIVE if self.dataplane.live() else _error("server is not live", 400)

    async def ready(self) -> Response:
        return _READY if self.dataplane.ready() else _error("server is not ready", 400)

    async def list_models(self) -> Response:
        """KServe's model list, ``{"models": [names]}``: every model with a version ready, sorted."""
        ready = {row.name for row in self.dataplane.repository_index(ready_only=True)}
        return _json({"models": sorted(ready)})

    async def all_stats(self) -> Response:
        return _json({"model_stats": self.dataplane.model_statistics()})

    async def model_metadata(self, model_name: str, model_version: str = "") -> Response:
        return _json(_metadata_json(self.dataplane.model_metadata(model_name, model_version)))

    async def model_ready(self, model_name: str, model_version: str = "") -> Response:
        if self.dataplane.model_ready(model_name, model_version):
            return _json({"name": model_name, "ready": True})
        version = f" version {model_version}" if model_version else ""
        return _error(f"model '{model_name}'{version} is not ready", 400)

    async def model_config(self, model_name: str, model_version: str = "") -> Response:
        return _json(self.dataplane.model_config(model_name, model_version))

    async def model_stats(self, model_name: str, model_version: str = "") -> Response:
        return _json({"model_stats": self.dataplane.model_statistics(model_name, model_version)})

    async def infer(
        self, headers: Mapping[str, str], receive: Receive, model_name: str, model_version: str = ""
    ) -> tuple[bytes, dict[str, str]]:
        """One inference: the response body and its headers (lower-case names, Content-Length aside)."""
        try:
            body = await _read_body(receive, headers.get("content-length"), self.limit)
        except ModelportError as error:
            raise self.route.reject(error, model_name, model_version) from None
        return await self.route.answer(headers, body, model_name, model_version)

    async def infer_route(self, request: Request, model_name: str, model_version: str = "") -> Response:
        """The registered route (for the OpenAPI document and the 405 on other methods): :class:`_RestApp`
        answers every POST .../infer itself with :meth:`serve_infer` before routing."""
        content, headers = await self.infer(request.headers, request.receive, model_name, model_version)
        return Response(content, headers=headers)

    async def serve_infer(
        self, scope: Scope, receive: Receive, send: Send, model_name: str, model_version: str
    ) -> None:
        """POST .../infer on plain ASGI: no Request or Response objects on the hot path."""
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        try:
            content, response_headers = await self.infer(headers, receive, model_name, model_version)
        except (Exception, asyncio.CancelledError) as error:
            await _error_response(error)(scope, receive, send)
            return
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response_headers.items()]
        raw.append((b"content-length", str(len(content)).encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": content})

    async def repository_index(self, request: Request) -> Response:
        body = await _json_body(request, self.limit)
        ready_only = body.get("ready", False)
        if not isinstance(ready_only, bool):
            raise InvalidInput("repository index: 'ready' must be true or false")
        rows = self.dataplane.repository_index(ready_only=ready_only)
        return _json(
            [
                {"name": r.name, "version": r.version, "state": r.state, "reason": r.reason}
                if r.version
                else {"name": r.name, "state": r.state, "reason": r.reason}
                for r in rows
            ]
        )

    def _control(self, request: Request, action: str) -> ExplicitControl:
        """The explicit control, once this client may ``action`` a model (a management operation: see
        :mod:`management_access`); checked before the body is read."""
        if self.explicit is None:
            raise Unsupported(f"repository {action} is not available on this server")
        self.explicit.require_enabled(action)
        self._check_access(request, f"repository {action}")
        return self.explicit

    def _check_access(self, request: Request, what: str) -> None:
        self.access.check(
            what,
            authorization=request.headers.get("authorization"),
            client_host=request.client.host if request.client else None,
        )

    async def load(self, request: Request, model_name: str) -> Response:
        control = self._control(request, "load")
        body = await _json_body(request, self.limit)
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput("load request: 'parameters' must be an object")
        config = parameters.get("config")
        if config is not None and not isinstance(config, str):
            raise InvalidInput("load request: parameters.config must be a JSON string")
        files: dict[str, bytes] = {}
        for key, value in parameters.items():
            if key.startswith("file:"):
                if not isinstance(value, str):
                    raise InvalidInput(f"load request: parameters.{key} must be base64 text")
                try:
                    files[key] = base64.b64decode(value, validate=True)
                except binascii.Error:
                    raise InvalidInput(f"load request: parameters.{key} is not valid base64") from None
        await control.load(model_name, config_json=config, files=files or None)
        return _EMPTY_OK

    async def unload(self, request: Request, model_name: str) -> Response:
        control = self._control(request, "unload")
        await _json_body(request, self.limit)
        await control.unload(model_name)
        return _EMPTY_OK

    # Triton's system shared-memory extension (``shared_memory.regions``); register and unregister are
    # management operations (``management_access``: loopback clients, or the management token).
    async def shm_status(self, region_name: str) -> Response:
        regions = self.dataplane.system_shared_memory.status(region_name)
        return _json([dataclasses.asdict(region) for region in regions])

    async def shm_status_all(self) -> Response:
        return await self.shm_status("")

    async def shm_register(self, request: Request, region_name: str) -> Response:
        self._check_access(request, "system shared memory register")
        body = await _json_body(request, self.limit)
        self.dataplane.system_shared_memory.register(
            region_name, key=body.get("key"), offset=body.get("offset", 0), byte_size=body.get("byte_size")
        )
        return _EMPTY_OK

    async def shm_unregister(self, request: Request, region_name: str) -> Response:
        self._check_access(request, "system shared memory unregister")
        self.dataplane.system_shared_memory.unregister(region_name)
        return _EMPTY_OK

    async def shm_unregister_all(self, request: Request) -> Response:
        return await self.shm_unregister(request, "")

    async def cuda_shared_memory(self, operation: str) -> Response:
        raise Unsupported(CUDA_SHARED_MEMORY_REFUSAL)

    # Triton's trace and logging extensions: reading is open, changing is a management operation.
    async def trace_setting(self, request: Request, model_name: str = "") -> Response:
        update = None
        if request.method == "POST":
            self._may_change(request, "trace settings")
            update = trace_update_from_json(await _json_body(request, self.limit))
        return _json(self.dataplane.trace_settings(model_name, update))

    async def log_settings(self, request: Request) -> Response:
        update = None
        if request.method == "POST":
            self._may_change(request, "log settings")
            update = log_update_from_json(await _json_body(request, self.limit))
        return _json(self.dataplane.log_settings(update))

    def _may_change(self, request: Request, what: str) -> None:
        # Changing them acts on the whole server (a debug log level or tracing every request costs every
        # client; Triton's answer is its restricted-API option): a management operation.
        self._check_access(request, f"changing the {what}")


_INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
# Every route that names a model, matched on the path as the client sent it (before percent-decoding).
_NAMED_PATH = re.compile(rb"/v2/(?:repository/)?models/([^/?]*)(?:/versions/([^/?]*))?(?:[/?].*)?", re.DOTALL)


def _check_path_names(scope: Scope) -> None:
    """The one place REST applies :mod:`names`: the model name and version of any ``/v2/models/...`` or
    ``/v2/repository/models/...`` path, each segment percent-decoded on its own (so ``%2e%2e`` and ``%2f``
    are caught), before routing. :class:`InvalidInput` naming the part of the path."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    match = _NAMED_PATH.fullmatch(raw)
    if match is None:
        return
    check_path_names(*match.groups())


class _RestApp(FastAPI):
    """FastAPI with a fast path for ``POST .../infer``: straight to the handler on plain ASGI, past the
    middleware stack and route matching (the handler maps its own errors). The infer routes stay registered
    for the OpenAPI document and for the 405 on other methods."""

    endpoints: _Endpoints | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                _check_path_names(scope)
            except InvalidInput as refused:
                await _error(refused.message, HTTP_STATUS[refused.code])(scope, receive, send)
                return
        if scope["type"] == "http" and scope["method"] == "POST" and self.endpoints is not None:
            match = _INFER_PATH.fullmatch(scope["path"])
            if match is not None:
                await self.endpoints.serve_infer(scope, receive, send, match[1], match[2] or "")
                return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """The document FastAPI builds from :data:`ROUTE_DOCS`, less the 422 answers no route sends."""
        if self.openapi_schema is None:
            self.openapi_schema = without_validation_errors(super().openapi())
        return self.openapi_schema


def create_rest_app(
    dataplane: DataPlane,
    settings: ServerSettings,
    *,
    explicit: ExplicitControl | None = None,
    defaults: DefaultVersions | None = None,
) -> FastAPI:
    """The REST application over ``dataplane``; repository load and unload go to ``explicit`` (without it
    they are refused as not available). With ``defaults`` (the versions TorchServe's set-default chose),
    TorchServe's inference API is served beside it (``torchserve_api``)."""
    app = _RestApp(
        title="modelport",
        summary="Open Inference Protocol (KServe v2) over ONNX Runtime, as Triton speaks it",
        version=dataplane.server_metadata().version,
        docs_url=None,  # rest_docs serves them without a CDN
        redoc_url=None,
    )
    add_offline_docs(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        # error.headers: the 405's Allow header (RFC 9110 requires it).
        return _json(
            {"error": f"{error.detail}: {request.method} {request.url.path}"},
            error.status_code,
            headers=error.headers,
        )

    e = _Endpoints(dataplane, settings, explicit)
    model = "/v2/models/{model_name}"
    version = "/v2/models/{model_name}/versions/{model_version}"
    region = "/v2/systemsharedmemory/region/{region_name}"
    routes: list[tuple[str, str, Endpoint, str]] = [
        ("GET", "/v2", e.server_metadata, "Server metadata"),
        ("GET", "/v2/health/live", e.live, "Server liveness: 200 when live"),
        ("GET", "/v2/health/ready", e.ready, "Server readiness: 200 when ready"),
        ("GET", "/v2/models", e.list_models, "Names of the models that serve (KServe's model list)"),
        ("GET", "/v2/models/stats", e.all_stats, "Statistics of every model"),
        ("GET", model, e.model_metadata, "Model metadata"),
        ("GET", version, e.model_metadata, "Model version metadata"),
        ("GET", f"{model}/ready", e.model_ready, "Model readiness: 200 when ready"),
        ("GET", f"{version}/ready", e.model_ready, "Model version readiness"),
        ("GET", f"{model}/config", e.model_config, "Model configuration (Triton's ModelConfig JSON)"),
        ("GET", f"{version}/config", e.model_config, "Model version configuration"),
        ("GET", f"{model}/stats", e.model_stats, "Model statistics"),
        ("GET", f"{version}/stats", e.model_stats, "Model version statistics"),
        ("POST", f"{model}/infer", e.infer_route, "Inference: JSON or binary tensor extension"),
        ("POST", f"{version}/infer", e.infer_route, "Inference on a version"),
        ("POST", "/v2/repository/index", e.repository_index, "Every model, version, state and reason"),
        ("POST", "/v2/repository/models/{model_name}/load", e.load, "Load or reload (explicit mode)"),
        ("POST", "/v2/repository/models/{model_name}/unload", e.unload, "Unload (explicit mode)"),
        (
            "GET",
            "/v2/systemsharedmemory/status",
            e.shm_status_all,
            "Every registered system shared memory region",
        ),
        ("GET", f"{region}/status", e.shm_status, "One system shared memory region"),
        ("POST", f"{region}/register", e.shm_register, "Register a system shared memory region"),
        ("POST", "/v2/systemsharedmemory/unregister", e.shm_unregister_all, "Unregister every region"),
        ("POST", f"{region}/unregister", e.shm_unregister, "Unregister a system shared memory region"),
        *(
            (method, "/v2/cudasharedmemory/{operation:path}", e.cuda_shared_memory, "CUDA shared memory: 501")
            for method in ("GET", "POST")
        ),
        *(
            (method, path, endpoint, summary)
            for path, endpoint, summary in (
                ("/v2/trace/setting", e.trace_setting, "Trace settings (POST: change them)"),
                (f"{model}/trace/setting", e.trace_setting, "A model's trace settings (POST: change them)"),
                ("/v2/logging", e.log_settings, "Log settings (POST: change them)"),
            )
            for method in ("GET", "POST")
        ),
    ]
    for method, path, endpoint, summary in routes:
        # response_class: the document describes each body itself (ROUTE_DOCS), an empty 200 included.
        app.add_api_route(
            path,
            _guarded(endpoint),
            methods=[method],
            summary=summary,
            response_class=Response,
            **ROUTE_DOCS[path],
        )
    tfserving_json = functools.partial(_json_body, limit=e.limit, loads=loads_with_non_finite)
    add_tfserving_routes(app, dataplane, read_json=tfserving_json)
    if defaults is not None:
        add_torchserve_routes(app, dataplane, defaults, limit=settings.http_max_body_bytes)
    app.endpoints = e
    return app
