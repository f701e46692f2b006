"""The REST application's API documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served
without a CDN.

FastAPI's own pages load their JavaScript and CSS from a CDN, which a machine or cluster without internet
cannot reach. The same pages (FastAPI's ``get_swagger_ui_html`` and ``get_redoc_html``) point here at the
copies ``fastapi-offline`` ships in its wheel (Swagger UI 5, Apache-2.0; ReDoc 2, MIT; the package MIT),
served from ``/docs/assets``; no Google fonts.
"""

from __future__ import annotations

import importlib.resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["add_offline_docs"]

_ASSETS = "/docs/assets"


def add_offline_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their assets to ``app`` (made with ``docs_url=redoc_url=None``)."""
    directory = importlib.resources.files("fastapi_offline").joinpath("static")
    app.mount(_ASSETS, StaticFiles(directory=str(directory)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_ASSETS}/favicon.png",
        )

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            redoc_js_url=f"{_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
