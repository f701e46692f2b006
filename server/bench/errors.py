"""The one error ``modelport bench`` raises for what the user can fix (a bad argument, an unknown model)."""

from __future__ import annotations

import click

__all__ = ["BenchError"]


class BenchError(click.ClickException):
    """Printed as ``Error: <message>`` with exit code 1 by click; the message says what to fix."""
