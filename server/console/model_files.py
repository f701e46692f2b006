"""The read-only files of a model folder the console shows: ``labels.txt`` and ``vocabulary.json`` beside
the versions, and the reports converters leave beside a version's ``model.onnx``.

Only these names are read, from the repository folder only: the model name and version are checked by
:mod:`..names` first, and :mod:`..config_files` reads the file as it reads every file of a model folder
(a regular file, bounded in size, UTF-8, reached without leaving the repository through a link).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config_files import LABELS_MAX_BYTES, UnreadableFile, read_text, resolve_inside
from ..errors import InvalidInput
from ..names import check_model_name, check_version

__all__ = ["MODEL_FILES", "REPORT_FILES", "MissingFile", "ModelFiles"]

# What each file name is answered with: labels as a list of strings, the vocabulary as its JSON object.
MODEL_FILES = ("labels.txt", "vocabulary.json")
# The reports converters write beside model.onnx (converters' repository_writer, quantize.repository, the
# mobile export), shown in this order.
REPORT_FILES = ("conversion.json", "quantization.json", "mobile_export.json")


class MissingFile(Exception):
    """The model folder has no such file (a 404, not a client error)."""


class ModelFiles:
    """The console's view of the files under ``repository``."""

    def __init__(self, repository: Path) -> None:
        self._root = repository

    def _read(self, *parts: str) -> str:
        """The text of ``repository/parts...``, bounded and kept inside the repository by
        :mod:`..config_files` (the reader of every file a model folder holds)."""
        what = "/".join(parts)
        try:
            return read_text(resolve_inside(self._root, what), limit=LABELS_MAX_BYTES)
        except FileNotFoundError:
            raise MissingFile(f"the model folder has no {what}") from None
        except UnreadableFile as error:
            raise InvalidInput(f"{what} {error}") from None

    def model_file(self, model: str, file_name: str) -> dict[str, Any]:
        """``{"labels": [...]}`` for labels.txt, the vocabulary's own object for vocabulary.json."""
        check_model_name(model, field="path: model name")
        if file_name not in MODEL_FILES:
            served = " and ".join(MODEL_FILES)
            raise InvalidInput(
                f"path: file {file_name[:40]!a} is not served; the console reads only {served}"
            )
        text = self._read(model, file_name)
        if file_name == "labels.txt":
            return {"labels": [line.strip() for line in text.splitlines() if line.strip()]}
        return _json_object(text, f"{model}/{file_name}")

    def reports(self, model: str, version: str) -> dict[str, Any]:
        """Every report the version folder has, by file name (none: an empty object)."""
        check_model_name(model, field="path: model name")
        check_version(version, field="path: model version", latest=False)
        found: dict[str, Any] = {}
        for name in REPORT_FILES:
            try:
                found[name] = _json_object(self._read(model, version, name), name)
            except MissingFile:
                continue
        return found


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"{what} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{what}: expected a JSON object")
    return data
