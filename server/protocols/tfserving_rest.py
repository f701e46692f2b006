"""TF Serving's REST API (``g3doc/api_rest.md``) on the REST port, over the one data plane; KServe's v1
protocol (``GET /v1/models[/M]``, ``POST /v1/models/M:predict``) is the same surface.

``GET /v1/models/M[/versions/V]`` answers the model status (``model_version_status``, with KServe v1's
``name`` and ``ready`` beside it), ``GET .../metadata`` the ``serving_default`` signature, ``POST
...:predict`` one inference in the row or columnar format (:mod:`tfserving_json`); ``:classify`` and
``:regress`` (tf.Example input) are 501, and so is a version label (``/labels/L``): versions here are
numbers. Errors are ``{"error": "..."}`` with TF Serving's status codes (:data:`TFS_HTTP_STATUS`, this
adapter's one table; an unknown model is 404 here, as TF Serving answers it, where Triton's 400).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from ..dataplane import DataPlane
from ..errors import ErrorCode, ModelNotFound, ModelportError, Unsupported
from ..inference import InferRequest
from ..names import check_path_names
from .large_requests import decode_off_loop
from .rest_infer import JSON, error_answer, error_body
from .tfserving_json import decode_predict, dumps_with_non_finite, encode_predict
from .tfserving_status import model_status
from .tfserving_types import signature_def_map

__all__ = ["TFS_HTTP_STATUS", "add_tfserving_routes"]

# TF Serving's mapping (model_servers/http_server.cc: ToHTTPStatusCode), for our codes; a body over the
# limit stays 413 (TF Serving has no such limit to answer: its RESOURCE_EXHAUSTED, 429, is about load).
TFS_HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARG: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.UNSUPPORTED: 501,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.DEADLINE_EXCEEDED: 504,
    ErrorCode.RESOURCE_EXHAUSTED: 413,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.INTERNAL: 500,
}
_PATH = re.compile(
    r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<tail>/metadata|:predict|:classify|:regress)?"
)
_ENCODE_FACTOR = 3  # JSON text of numbers takes ~2-3 bytes per tensor byte

ReadJson = Callable[[Request], Awaitable[dict[str, Any]]]


def _answer(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


def _error_response(error: BaseException) -> Response:
    if isinstance(error, ModelportError):
        status = 404 if isinstance(error, ModelNotFound) else TFS_HTTP_STATUS[error.code]
        return Response(error_body(error.message), status_code=status, media_type=JSON)
    status, body = error_answer(error)  # logged with a request id, as every route's unexpected error
    return Response(body, status_code=status, media_type=JSON)


class _TfServing:
    def __init__(self, dataplane: DataPlane, read_json: ReadJson) -> None:
        self.dataplane = dataplane
        self.read_json = read_json

    async def models(self) -> Response:
        """KServe v1's model list: the models with a version ready."""
        ready = {row.name for row in self.dataplane.repository_index(ready_only=True)}
        return _answer({"models": sorted(ready)})

    async def get(self, request: Request) -> Response:
        try:
            name, version, tail = self._route(request, ("/metadata", None))
            if tail == "/metadata":
                return self._metadata(name, version)
            return self._status(name, version)
        except (Exception, asyncio.CancelledError) as error:
            return _error_response(error)

    async def post(self, request: Request) -> Response:
        try:
            name, version, tail = self._route(request, (":predict", ":classify", ":regress"))
            if tail != ":predict":
                return _error_response(
                    Unsupported(
                        f"{(tail or '')[1:]} is not supported by modelport: it takes tf.Example input, which "
                        "ONNX models do not; use :predict with the model's input tensors"
                    )
                )
            return await self._predict(request, name, version)
        except (Exception, asyncio.CancelledError) as error:
            return _error_response(error)

    def _route(self, request: Request, tails: tuple[str | None, ...]) -> tuple[str, str, str | None]:
        raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
        match = _PATH.fullmatch(raw.decode("latin-1"))
        if match is None or match["tail"] not in tails:
            allowed = " or ".join(f"'{t}'" if t else "nothing" for t in tails)
            raise ModelNotFound(
                f"Malformed request: {request.method} {request.url.path}; after /v1/models/M[/versions/V] "
                f"{request.method} takes {allowed}"
            )
        check_path_names(match["name"].encode("latin-1"), (match["version"] or "").encode("latin-1") or None)
        if match["label"] is not None:
            raise Unsupported(
                f"version labels are not supported by modelport (asked for label '{match['label'][:64]}'): "
                f"versions are numbers; use /v1/models/{match['name']}/versions/N"
            )
        return match["name"], match["version"] or "", match["tail"]

    def _status(self, name: str, version: str) -> Response:
        statuses = model_status(self.dataplane, name, version)
        return _answer(
            {
                "model_version_status": [
                    {
                        "version": str(status.version),
                        "state": status.state,
                        "status": {"error_code": status.error_code, "error_message": status.error_message},
                    }
                    for status in statuses
                ],
                "name": name,
                "ready": any(status.state == "AVAILABLE" for status in statuses),
            }
        )

    def _metadata(self, name: str, version: str) -> Response:
        metadata = self.dataplane.model_metadata(name, version)
        served = version or max(metadata.versions, key=int, default="")
        spec = {"name": name, "signature_name": "", "version": served}
        return _answer({"model_spec": spec, "metadata": {"signature_def": signature_def_map(metadata)}})

    async def _predict(self, request: Request, name: str, version: str) -> Response:
        try:
            body = await self.read_json(request)
            specs = self.dataplane.model_metadata(name, version).inputs
            decoded = decode_predict(body, specs, model=name)
        except ModelportError as error:
            raise self.dataplane.reject(
                error, model_name=name, model_version=version, request_id="", protocol="http"
            ) from None
        response = await self.dataplane.infer(InferRequest(name, version, decoded.inputs, protocol="http"))
        size = _ENCODE_FACTOR * sum(array.nbytes for array in response.outputs.values())
        outputs, rows = response.outputs, decoded.rows
        content = await decode_off_loop(
            size, lambda: dumps_with_non_finite(encode_predict(outputs, rows=rows), outputs)
        )
        return Response(content, media_type=JSON)


def add_tfserving_routes(app: FastAPI, dataplane: DataPlane, *, read_json: ReadJson) -> None:
    """Serve TF Serving's (and KServe v1's) REST API on ``app``; ``read_json`` reads a request's JSON object
    body under the REST port's limits. Not in the OpenAPI document: TF Serving's paths put the verb after
    a colon, which OpenAPI's path templates cannot tell from the model name."""
    routes = _TfServing(dataplane, read_json)
    app.add_api_route("/v1/models", routes.models, methods=["GET"], include_in_schema=False)
    app.add_api_route("/v1/models/{rest:path}", routes.get, methods=["GET"], include_in_schema=False)
    app.add_api_route("/v1/models/{rest:path}", routes.post, methods=["POST"], include_in_schema=False)
