"""Explicit model control: the repository load and unload that REST and gRPC clients ask for.

Only with ``--model-control explicit`` (else :class:`Unsupported`); who may ask is the adapters' to check
(``protocols.management_access``) before they call here. A load takes the model from the repository, or, with
``file:<version>/<path>`` contents, from an upload: the files are written below a directory this server owns
(never below the repository, never through a client-given path), each one atomically (a temporary file in its
folder, then renamed), and the directory lives for as long as a version loaded from it serves, since a
worker started later (scaling, a restart) reads the model from there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from ..errors import InvalidInput, Unsupported
from ..model_config import ModelConfig, ModelConfigError, parse_model_config
from ..names import MAX_VERSION_DIGITS, check_model_name
from ..settings import ServerSettings
from .model_manager import ModelManager
from .triton_model_config_in import TRITON_KEY_NAMES, from_triton_config, is_triton_config

__all__ = ["FILE_KEY_RULE", "ExplicitControl"]

logger = logging.getLogger(__name__)

_FILE_PREFIX = "file:"
_VERSION_PART = re.compile(rf"[1-9][0-9]{{0,{MAX_VERSION_DIGITS - 1}}}")  # the name rule's version bound
_FILE_PART = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}")  # never '.', '..' or hidden
_MAX_FILE_DEPTH = 8
FILE_KEY_RULE = (
    "'file:<version>/<file name>' (for example 'file:1/model.onnx'): a version number, then up to "
    f"{_MAX_FILE_DEPTH - 1} relative path parts of letters, digits and '_.-' that do not start with '.'"
)


def _relative_file(key: str, *, model: str) -> Path:
    """The path below the model's folder that the load parameter ``key`` names; :class:`InvalidInput` for a
    key that is absolute, climbs (``..``), or breaks :data:`FILE_KEY_RULE` in any other way."""
    parts = key.removeprefix(_FILE_PREFIX).split("/")
    if (
        not key.startswith(_FILE_PREFIX)
        or not 2 <= len(parts) <= _MAX_FILE_DEPTH
        or _VERSION_PART.fullmatch(parts[0]) is None
        or any(_FILE_PART.fullmatch(part) is None for part in parts[1:])
    ):
        shown = ascii(key[:80])
        raise InvalidInput(f"load request for '{model}': file key {shown} must look like {FILE_KEY_RULE}")
    return Path(*parts)


def _write_atomically(path: Path, content: bytes) -> None:
    """``content`` at ``path``, all of it or nothing: written to a temporary file beside it, then renamed."""
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _write_upload(model_dir: Path, files: dict[Path, bytes], *, model: str) -> None:
    """Write each relative path of ``files`` below ``model_dir`` (which exists and is empty)."""
    inside = model_dir.resolve()
    for relative, content in files.items():
        path = model_dir / relative
        # The parts were checked one by one; this also holds against links (none exist in a fresh folder).
        if not path.parent.resolve().is_relative_to(inside):
            raise InvalidInput(f"load request for '{model}': file '{relative}' leaves the model folder")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, content)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise InvalidInput(
                f"load request for '{model}': file '{relative}' is both a file and a folder of the upload"
            ) from None


class ExplicitControl:
    """Load and unload on request, over one :class:`ModelManager`. :meth:`close` removes the uploads."""

    def __init__(self, *, manager: ModelManager, settings: ServerSettings) -> None:
        self._manager = manager
        self._settings = settings
        self._uploads: Path | None = None  # created at the first upload
        self._writing: set[Path] = set()  # upload folders whose load has not finished

    def require_enabled(self, action: str) -> None:
        """:class:`Unsupported` unless the server runs with ``--model-control explicit``."""
        if self._settings.model_control != "explicit":
            raise Unsupported(
                f"explicit model {action} is not allowed with --model-control "
                f"{self._settings.model_control}; start the server with --model-control explicit"
            )

    async def load(
        self, name: str, *, config_json: str | None = None, files: dict[str, bytes] | None = None
    ) -> None:
        """(Re)load ``name``; ``config_json`` is config.yaml's schema as JSON, or Triton's ModelConfig JSON
        (as ``tritonclient``'s ``load_model(config=...)`` sends it; translated, unknown keys refused);
        ``files`` maps ``"file:<version>/<name>"`` to contents and needs ``config_json`` (as in Triton)."""
        self.require_enabled("load")
        check_model_name(name)
        config = _parse_config(name, config_json) if config_json is not None else None
        if not files:
            await self._manager.load(name, config=config)
            return
        if config is None:
            raise InvalidInput(f"load request for '{name}': file overrides need parameters.config as well")
        relative = {_relative_file(key, model=name): content for key, content in files.items()}
        folder = await asyncio.to_thread(self._new_upload_folder, name)
        self._writing.add(folder)
        try:
            # Up to the body limit of bytes: written off the event loop.
            await asyncio.to_thread(_write_upload, folder / name, relative, model=name)
            await self._manager.load(name, config=config, root=folder)
        finally:
            self._writing.discard(folder)
            await self._forget_unused_uploads()

    async def unload(self, name: str) -> None:
        """Stop serving every version of ``name`` (in-flight requests finish first)."""
        self.require_enabled("unload")
        check_model_name(name)
        await self._manager.unload(name)
        await self._forget_unused_uploads()

    def close(self) -> None:
        """Remove every upload (after the executors closed: nothing reads them any more)."""
        if self._uploads is not None:
            shutil.rmtree(self._uploads, ignore_errors=True)
            self._uploads = None

    def _new_upload_folder(self, name: str) -> Path:
        if self._uploads is None:
            self._uploads = Path(tempfile.mkdtemp(prefix="modelport-uploads-"))
        folder = Path(tempfile.mkdtemp(dir=self._uploads, prefix=f"{name}-"))
        (folder / name).mkdir()
        return folder

    async def _forget_unused_uploads(self) -> None:
        """Remove the upload folders that no serving version was loaded from and no load is writing."""
        if self._uploads is None:
            return
        uploads = self._uploads
        in_use = {v.spec.path for v in self._manager.serving()}
        keep = self._writing | _parents_below(uploads, in_use)
        await asyncio.to_thread(_remove_except, uploads, keep)


def _parents_below(uploads: Path, paths: set[Path]) -> set[Path]:
    """The upload folders (direct children of ``uploads``) that hold one of ``paths``."""
    folders = set()
    for path in paths:
        if path.is_relative_to(uploads):
            folders.add(uploads / path.relative_to(uploads).parts[0])
    return folders


def _remove_except(uploads: Path, keep: set[Path]) -> None:
    for folder in uploads.iterdir():
        if folder not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def _parse_config(name: str, config_json: str) -> ModelConfig:
    where = f"load request for '{name}': parameters.config"
    try:
        data = json.loads(config_json)
    except (ValueError, RecursionError) as error:  # RecursionError: nested deeper than the parser goes
        raise InvalidInput(f"{where}: not valid JSON ({type(error).__name__}: {error})") from None
    names = None
    if is_triton_config(data):
        data = from_triton_config(data, model=name, where=where)
        where, names = f"{where} (Triton ModelConfig)", TRITON_KEY_NAMES
    try:
        return parse_model_config(data, source=where, names=names)
    except ModelConfigError as error:
        raise InvalidInput(str(error)) from None
