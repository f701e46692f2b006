"""TorchServe's inference API: ``GET /ping``, ``POST /predictions/M[/V]``, ``POST /explanations/M[/V]``.

On the REST port beside the Open Inference Protocol, and alone on ``--torchserve-port`` (TorchServe's 8080)
for clients that expect it there. Each prediction decodes the body (``torchserve_bodies``), makes one
data-plane call with every instance as a row (so the batcher batches them with other requests), and answers
as TorchServe's default handlers do (``torchserve_answers``). Explanations (Captum) are not done: 501.

Errors are TorchServe's ``{"code": N, "type": "...Exception", "message": "..."}`` with the status and type
of :data:`TORCHSERVE_STATUS`, the one table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..dataplane import DataPlane, Servable
from ..errors import (
    DeadlineExceeded,
    InvalidInput,
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
from ..inference import InferRequest
from ..names import check_path_names
from ..observability.recording import internal_error
from .rest_infer import body_too_large, declared_too_large
from .torchserve_answers import answer_json, classifier_labels
from .torchserve_bodies import Decoded, decode_body
from .torchserve_defaults import DefaultVersions
from .torchserve_images import MissingImageSupport

__all__ = ["TORCHSERVE_STATUS", "add_torchserve_routes", "create_torchserve_app", "torchserve_error"]

log = logging.getLogger(__name__)

# By exception class (an error takes the entry of its class or nearest base class): status, TorchServe's type.
TORCHSERVE_STATUS: dict[type[ModelportError], tuple[int, str]] = {
    ModelNotFound: (404, "ModelNotFoundException"),
    InvalidInput: (400, "BadRequestException"),
    ModelNotReady: (503, "ServiceUnavailableException"),
    QueueFull: (503, "ServiceUnavailableException"),
    ServerUnavailable: (503, "ServiceUnavailableException"),
    DeadlineExceeded: (408, "RequestTimeoutException"),
    PayloadTooLarge: (413, "RequestEntityTooLargeException"),
    MissingImageSupport: (415, "UnsupportedMediaTypeException"),
    Unsupported: (501, "NotImplementedException"),
    Unauthenticated: (401, "UnauthorizedException"),
    PermissionDenied: (403, "ForbiddenException"),
    ModelportError: (500, "InternalServerException"),
}
_HEALTHY = Response(b'{"status": "Healthy"}', media_type="application/json")
_UNHEALTHY = Response(b'{"status": "Unhealthy"}', status_code=500, media_type="application/json")
_INLINE_BYTES = 64 * 1024  # bodies below this are decoded on the event loop


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def torchserve_error(error: BaseException) -> Response:
    """TorchServe's answer to ``error``: the table's status and type for a :class:`ModelportError`, a logged
    500 with a request id for anything else."""
    if not isinstance(error, ModelportError):
        error = internal_error(log, "TorchServe request", error)
    status, kind = next(TORCHSERVE_STATUS[c] for c in type(error).__mro__ if c in TORCHSERVE_STATUS)
    return _json({"code": status, "type": kind, "message": error.message}, status)


class _Routes:
    def __init__(self, dataplane: DataPlane, defaults: DefaultVersions, limit: int) -> None:
        self._dataplane = dataplane
        self._defaults = defaults
        self._limit = limit

    async def ping(self, request: Request) -> Response:
        return _HEALTHY if self._dataplane.healthy() else _UNHEALTHY

    async def predictions(self, request: Request, model_name: str, model_version: str = "") -> Response:
        try:
            return await self._predict(request, model_name, model_version)
        except (Exception, asyncio.CancelledError) as error:
            return torchserve_error(error)

    async def explanations(self, request: Request, model_name: str, model_version: str = "") -> Response:
        try:
            await self._servable(model_name, model_version)  # an unknown model is a 404 first
        except (Exception, asyncio.CancelledError) as error:
            return torchserve_error(error)
        return torchserve_error(
            Unsupported(
                "explanations (TorchServe's Captum handlers) are not served: an ONNX model has no gradients "
                f"here; POST /predictions/{model_name} for predictions"
            )
        )

    async def _servable(self, model_name: str, model_version: str) -> tuple[str, Servable]:
        version = self._defaults.version_for(model_name, model_version)
        check_path_names(model_name.encode(), version.encode() if version else None)
        try:
            servable = await self._dataplane.servable(model_name, version)
        except ModelNotFound:
            if version and self._dataplane.model_ready(model_name):
                raise ModelNotFound(
                    f"Model version {model_version} does not exist for model {model_name}"
                ) from None
            raise ModelNotFound(f"Model not found: {model_name}") from None
        return version, servable

    async def _predict(self, request: Request, model_name: str, model_version: str) -> Response:
        body = await self._body(request)
        version, servable = await self._servable(model_name, model_version)
        config = servable.spec.config
        batching = config.max_batch_size > 0
        content_type = request.headers.get("content-type", "")

        def decode() -> tuple[Decoded, tuple[str, ...] | None]:
            return decode_body(body, content_type, list(config.inputs), batching), classifier_labels(servable)

        try:
            if len(body) < _INLINE_BYTES:
                decoded, labels = decode()
            else:
                decoded, labels = await asyncio.to_thread(decode)
        except ModelportError as error:
            raise self._dataplane.reject(
                error, model_name=model_name, model_version=version, request_id="", protocol="http"
            ) from None
        response = await self._dataplane.infer(
            InferRequest(model_name=model_name, model_version=version, inputs=decoded.inputs),
            servable=servable if len(body) < _INLINE_BYTES else None,
        )
        outputs = response.outputs
        if not batching:  # the whole tensor is the one instance
            outputs = {name: array[np.newaxis] for name, array in outputs.items()}
        return _json(answer_json(outputs, single=decoded.single or not batching, labels=labels))

    async def _body(self, request: Request) -> bytes:
        refusal = declared_too_large(request.headers.get("content-length"), self._limit)
        if refusal is not None:
            raise refusal
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._limit:
                raise body_too_large(self._limit)
            chunks.append(chunk)
        return b"".join(chunks)


def add_torchserve_routes(
    app: FastAPI, dataplane: DataPlane, defaults: DefaultVersions, *, limit: int
) -> None:
    """Add TorchServe's inference routes to ``app`` (``limit``: the largest body, in bytes). Left out of the
    Open Inference Protocol's OpenAPI document; :func:`create_torchserve_app` documents them."""
    _add(app, _Routes(dataplane, defaults, limit))


_SUMMARIES = {
    "ping": "Health: Healthy (200) or Unhealthy (500)",
    "predictions": "TorchServe predictions",
    "explanations": "TorchServe explanations: 501",
}


def _paths(routes: _Routes) -> list[tuple[str, list[str], Callable[..., Awaitable[Response]], str]]:
    """(path, methods, endpoint, summary) of every route."""
    found: list[tuple[str, list[str], Callable[..., Awaitable[Response]], str]] = [
        ("/ping", ["GET"], routes.ping, _SUMMARIES["ping"])
    ]
    for kind, endpoint in (("predictions", routes.predictions), ("explanations", routes.explanations)):
        for path in (f"/{kind}/{{model_name}}", f"/{kind}/{{model_name}}/{{model_version}}"):
            found.append((path, ["POST", "PUT"], endpoint, _SUMMARIES[kind]))
    return found


def _plain(endpoint: Callable[..., Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        return await endpoint(request, **request.path_params)

    return handle


def _add(app: FastAPI, routes: _Routes) -> None:
    # Starlette routes, not FastAPI's: no parameter injection to pay for (benchmarks/torchserve_api.py).
    for path, methods, endpoint, _ in _paths(routes):
        app.add_route(path, _plain(endpoint), methods=methods, include_in_schema=False)


def _document(routes: _Routes, version: str) -> dict[str, Any]:
    """The OpenAPI document of the routes (FastAPI's, from an application that only describes them)."""
    described = FastAPI(title="modelport: TorchServe inference API", version=version)
    for path, methods, endpoint, summary in _paths(routes):
        described.add_api_route(path, endpoint, methods=methods, summary=summary, response_class=Response)
    return described.openapi()


def create_torchserve_app(dataplane: DataPlane, defaults: DefaultVersions, *, limit: int) -> FastAPI:
    """TorchServe's inference API alone, for ``--torchserve-port``: its routes, ``/api-description`` and
    ``OPTIONS /`` (the OpenAPI document, as TorchServe answers them), TorchServe-shaped 404 and 405."""
    app = FastAPI(
        title="modelport: TorchServe inference API", docs_url=None, redoc_url=None, openapi_url=None
    )
    routes = _Routes(dataplane, defaults, limit)
    _add(app, routes)
    document = _document(routes, dataplane.server_metadata().version)

    async def description(request: Request) -> Response:
        return _json(document)

    app.add_api_route("/api-description", description, methods=["GET"], include_in_schema=False)
    app.add_api_route("/", description, methods=["OPTIONS"], include_in_schema=False)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            message = f"Requested resource is not found, please refer to API document: {request.url.path}"
            return _json({"code": 404, "type": "ResourceNotFoundException", "message": message}, 404)
        kind = "MethodNotAllowedException" if error.status_code == 405 else "BadRequestException"
        message = f"{error.detail}: {request.method} {request.url.path}"
        return _json({"code": error.status_code, "type": kind, "message": message}, error.status_code)

    return app
