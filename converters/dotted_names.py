"""``package.module:attribute`` names, as factories and ``--custom-op`` give them, resolved to the object."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .errors import ExportFailed, InvalidOption, SourceNotFound

__all__ = ["resolve_callable"]


def resolve_callable(spec: str, *, callable_required: bool = True) -> Any:
    """The object ``package.module:attribute`` names (imported from the current directory first)."""
    module_name, attribute = spec.split(":", 1)
    # Like `python -m`, look in the current directory first, so `convert mymodels:build` works where it lives.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise SourceNotFound(
                f"{spec}: no module named '{error.name}'; run from the directory that holds it, or install it"
            ) from error
        raise ExportFailed(f"{spec}: importing it failed: {error}; install what it needs") from error
    except Exception as error:
        raise ExportFailed(
            f"{spec}: importing {module_name} failed ({type(error).__name__}: {error})"
        ) from error
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise SourceNotFound(f"{spec}: {module_name} has no attribute '{part}'; check the name after ':'")
        target = getattr(target, part)
    if callable_required and not callable(target):
        raise InvalidOption(f"{spec}: is not callable; point at a function or class that returns the model")
    return target
