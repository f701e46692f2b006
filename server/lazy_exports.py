"""The subpackages' public names, imported from their modules on first use (PEP 562 module ``__getattr__``).

A subpackage's ``__init__`` lists what other layers use from it in ``__all__`` without importing those
modules: importing one module of a subpackage (a worker child importing its loop, the parent importing its
handle) must not import its siblings, and with them ONNX Runtime, FastAPI or gRPC.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that imports ``name`` from ``package.<exports[name]>``.

    Any other name raises :class:`AttributeError`, as a module without ``__getattr__`` would.
    """

    def module_getattr(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return module_getattr
