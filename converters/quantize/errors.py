"""Errors of the quantized export. Each message names the file, key or option at fault and what to do."""

from __future__ import annotations

__all__ = ["QuantizeError"]


class QuantizeError(Exception):
    """The quantization or mobile export cannot go on; ``str(error)`` is meant for the user."""
