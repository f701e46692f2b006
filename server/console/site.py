"""The console's routes on the REST application: the page and its assets, the live series, model files.

- ``GET /console``: the page; ``GET /console/assets/NAME``: its CSS and JavaScript, read from the package.
- ``GET /``: a redirect to ``/console`` for a browser (``Accept: text/html``); any other client gets the
  404 it always got.
- ``GET /console/api/live?since=T``: :meth:`LiveSampler.snapshot` (samples newer than ``T``).
- ``GET /console/api/server``: the sample interval and where the management API listens, for the page.
- ``GET /console/api/models/M/files/{labels.txt|vocabulary.json}`` and
  ``GET /console/api/models/M/versions/V/reports``: :class:`ModelFiles`.

Everything else the page shows comes from the existing endpoints (repository index, metadata, config, infer),
and management actions go from the browser to the management API itself with the token the operator gives
it: these routes read, never change, anything. Pages and assets carry a Content-Security-Policy that allows
only this origin's scripts and styles and connections to this origin and the management API.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import re
from collections.abc import Callable

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..executor import ExecutorStatus
from ..observability.metrics import ServerMetrics
from ..observability.sampler import LiveSampler
from ..protocols.rest_infer import error_answer
from ..repository.model_manager import ModelManager
from ..settings import ServerSettings
from .model_files import MissingFile, ModelFiles

__all__ = ["ConsoleSite"]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# A Host header's host part, accepted into the policy only when it looks like a name or an IPv4 or IPv6
# address (bracketed or not).
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|\[?[0-9A-Fa-f:.]{2,45}\]?")
_NO_STORE = {"cache-control": "no-store"}  # the data routes: always read afresh


@functools.cache
def _asset(name: str) -> bytes | None:
    """The packaged asset ``name`` (a plain file name in ``assets/``), or None."""
    if "/" in name or name.startswith(".") or not name.endswith(tuple(_TYPES)):
        return None
    resource = importlib.resources.files(__package__).joinpath("assets", name)
    return resource.read_bytes() if resource.is_file() else None


def _json(content: object, status: int = 200) -> Response:
    return Response(
        orjson.dumps(content), status_code=status, media_type="application/json", headers=_NO_STORE
    )


class ConsoleSite:
    """The console over ``sampler`` and the model folders under ``repository``'s :class:`ModelFiles`.

    ``management_port`` is set once the management API listens (None: the page offers no actions);
    ``management_token`` says whether that API needs a token (the page asks the operator for it)."""

    def __init__(self, *, sampler: LiveSampler, files: ModelFiles, management_token: bool) -> None:
        self.sampler = sampler
        self.files = files
        self.management_token = management_token
        self.management_port: int | None = None

    @classmethod
    def build(cls, *, metrics: ServerMetrics, manager: ModelManager, settings: ServerSettings) -> ConsoleSite:
        """The console of a server: live series of ``manager``'s serving versions from ``metrics``, files
        from ``settings.repository``."""

        def statuses() -> list[tuple[str, str, ExecutorStatus]]:
            return [(v.spec.name, str(v.spec.version), v.executor.status()) for v in manager.serving()]

        return cls(
            sampler=LiveSampler(metrics, statuses),
            files=ModelFiles(settings.repository),
            management_token=settings.management_token is not None,
        )

    def _policy(self, request: Request) -> str:
        connect = "'self'"
        host = (request.url.hostname or "").strip()
        if self.management_port is not None and _HOST.fullmatch(host):
            shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
            connect += f" {request.url.scheme}://{shown}:{self.management_port}"
        return (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )

    def _page(self, request: Request, name: str) -> Response:
        body = _asset(name)
        if body is None:
            raise StarletteHTTPException(404)
        suffix = name[name.rindex(".") :]
        headers = {
            "content-security-policy": self._policy(request),
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "cache-control": "no-cache",
        }
        return Response(body, media_type=_TYPES[suffix], headers=headers)

    async def root(self, request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/console", status_code=307)
        raise StarletteHTTPException(404)

    async def index(self, request: Request) -> Response:
        return self._page(request, "index.html")

    async def asset(self, request: Request, name: str) -> Response:
        return self._page(request, name)

    async def live(self, request: Request) -> Response:
        raw = request.query_params.get("since", "0") or "0"
        try:
            since = float(raw)
        except ValueError:
            return _json({"error": f"query parameter 'since': {raw[:40]!a} is not a number"}, 400)
        return _json(self.sampler.snapshot(since=since))

    async def server(self) -> Response:
        return _json(
            {
                "interval_s": self.sampler.interval_s,
                "window_s": self.sampler.window_s,
                "management": {"port": self.management_port, "token_required": self.management_token},
            }
        )

    async def model_file(self, model_name: str, file_name: str) -> Response:
        return await self._read(self.files.model_file, model_name, file_name)

    async def reports(self, model_name: str, model_version: str) -> Response:
        return await self._read(self.files.reports, model_name, model_version)

    @staticmethod
    async def _read(read: Callable[..., object], *args: str) -> Response:
        try:
            return _json(await asyncio.to_thread(read, *args))
        except MissingFile as missing:
            return _json({"error": str(missing)}, 404)
        except Exception as error:
            status, body = error_answer(error)
            return Response(body, status_code=status, media_type="application/json")

    def install(self, app: FastAPI) -> None:
        """Add the console's routes to the REST application ``app`` (left out of its OpenAPI document)."""
        routes = (
            ("/", self.root),
            ("/console", self.index),
            ("/console/assets/{name}", self.asset),
            ("/console/api/live", self.live),
            ("/console/api/server", self.server),
            ("/console/api/models/{model_name}/files/{file_name}", self.model_file),
            ("/console/api/models/{model_name}/versions/{model_version}/reports", self.reports),
        )
        for path, endpoint in routes:
            app.add_api_route(
                path, endpoint, methods=["GET"], include_in_schema=False, response_class=Response
            )
