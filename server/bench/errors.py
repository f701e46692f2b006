"""The one error ``modelport bench`` raises for what the user can fix (a bad argument, an unknown model)."""

from __future__ import annotations

import click

__all__ = ["BenchError", "ServerUnreachable"]


class BenchError(click.ClickException):
    """Printed as ``Error: <message>`` with exit code 1 by click; the message says what to fix."""


class ServerUnreachable(BenchError):
    """No answer at all from the server (refused, timed out): not a statement about the model."""
