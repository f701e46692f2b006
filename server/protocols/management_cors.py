"""Which web pages may call the management API from a browser (CORS): the operator console's.

The console is served on the HTTP port, the management API on its own, so the browser asks first (a CORS
preflight) before it sends the operator's token. This never changes who may make a management operation
(:mod:`management_access` still decides every request); it only lets a browser read the answers:

- with a management token, any page: every request needs the token, which only the operator has and types
  into the page (it is a header the page sets, never a cookie a browser sends by itself);
- without one, only the console itself on a loopback address (``127.0.0.1``, ``localhost``, ``[::1]`` at the
  HTTP port): other pages could otherwise drive the token-less API through a local operator's browser.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

__all__ = ["allow_console"]

_METHODS = ["GET", "POST", "PUT", "DELETE"]


def allow_console(app: FastAPI, *, token: bool, console_port: int | None) -> None:
    """Let the console's page call ``app`` (the management API); ``token``: whether one is configured,
    ``console_port``: the HTTP port the console is served on (None: no browser page is let in)."""
    if token:
        app.add_middleware(
            CORSMiddleware, allow_origins=["*"], allow_methods=_METHODS, allow_headers=["authorization"]
        )
    elif console_port is not None:
        app.add_middleware(
            CORSMiddleware,
            allow_origin_regex=rf"https?://(127\.0\.0\.1|localhost|\[::1\]):{console_port}",
            allow_methods=_METHODS,
            allow_headers=["authorization"],
        )
