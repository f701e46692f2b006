"""Why a Keras file would not load, in one line that says what to do.

Keras wraps the real reason in several layers of "could not be deserialized properly"; the innermost one says
it. A Python ``lambda`` (in a ``Lambda`` layer or as an ``Activation``) is stored as bytecode that Keras' safe
mode refuses to run, and we keep safe mode: loading it would execute code from the file.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import CorruptSource

__all__ = ["unreadable_keras_file"]

_LAYER = re.compile(r"deserializing class '(\w+)' using config=\{'name': '([^']+)'")
# Keras' own words for a lambda it will not load: a Lambda layer, and a lambda given as an activation.
_LAMBDA = (
    "Requested the deserialization of a `Lambda` layer",
    "Requested the deserialization of a Python lambda",
    "Could not interpret activation function identifier: {'value'",
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def _lambda_layers(path: Path) -> list[str]:
    """The names of the ``Lambda`` layers in a ``.keras`` archive's config (Keras' own error omits them)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda" and isinstance(node.get("config"), dict):
                found.append(str(node["config"].get("name")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def unreadable_keras_file(path: Path, error: BaseException) -> CorruptSource:
    """The error for a ``.keras``/``.h5`` file ``keras.saving.load_model`` refused, naming the layer when
    Keras does, with the way out for a lambda."""
    chain = list(_chain(error))
    layers = [match for e in chain if (match := _LAYER.search(str(e)))]
    where = f" (layer '{layers[-1].group(2)}', class {layers[-1].group(1)})" if layers else ""
    if any(marker in str(e) for e in chain for marker in _LAMBDA):
        if not layers and (named := _lambda_layers(path)):
            where = f" (layer '{', '.join(named)}', class Lambda)"
        return CorruptSource(
            f"{path}: the model holds a Python lambda{where}, which Keras will not load from a file "
            "(its safe mode refuses to run code stored in it); use a named function registered with "
            "@keras.saving.register_keras_serializable() or a keras.ops call instead, or convert the code "
            "that builds the model: modelport convert package.module:function"
        )
    innermost = chain[-1]
    return CorruptSource(
        f"{path}: not a readable Keras model{where} ({type(innermost).__name__}: "
        f"{_first_line(innermost)[:200]}); save it with model.save('model.keras')"
    )
