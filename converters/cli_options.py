"""The command-line options every converting command shares (``convert``, ``import-mar``,
``convert-repository``), declared once so that they read and default the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .api import DEFAULT_MAX_BATCH_SIZE
from .options import DEFAULT_ATOL, DEFAULT_RTOL

__all__ = ["ATOL", "MAX_BATCH_SIZE", "OPSET", "RTOL", "VERBOSE", "repository_option"]


F = TypeVar("F", bound=Callable[..., Any])


def repository_option(help_text: str = "Model repository folder.") -> Callable[[F], F]:
    """``--repository/-r``, a folder, default ``models``."""
    return click.option(
        "--repository",
        "-r",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("models"),
        show_default=True,
        help=help_text,
    )


OPSET = click.option("--opset", type=click.IntRange(min=7), help="ONNX opset (default: the exporter's).")
ATOL = click.option("--atol", type=click.FloatRange(min=0), default=DEFAULT_ATOL, show_default=True)
RTOL = click.option("--rtol", type=click.FloatRange(min=0), default=DEFAULT_RTOL, show_default=True)
MAX_BATCH_SIZE = click.option(
    "--max-batch-size",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_BATCH_SIZE,
    show_default=True,
    help="max_batch_size for a newly created config.yaml (when the batch axis is dynamic).",
)
VERBOSE = click.option("--verbose", "-v", is_flag=True, help="Show the frameworks' output and tracebacks.")
