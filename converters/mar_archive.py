"""TorchServe model archives (``.mar``): a zip with ``MAR-INF/MANIFEST.json``, read without running anything.

:func:`read_archive` checks the archive and its manifest (``model.serializedFile``, ``model.modelFile``,
``model.handler``, ``model.modelVersion``) and :func:`extract` writes the members the conversion needs into
a folder. Every refusal is a :class:`CorruptSource` naming the archive and the manifest field or member:
a truncated or non-zip file, a missing or unreadable manifest, a field naming a member that is not in the
archive or a path that leaves it (absolute, ``..``, a drive), and a zip bomb: a member that would unpack to
more than :data:`MAX_UNPACK_RATIO` times its packed size (weights pack to about their own size), or a
manifest over :data:`MANIFEST_MAX_BYTES`, is refused before anything is decompressed.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import CorruptSource

__all__ = ["MANIFEST", "MarArchive", "extract", "read_archive", "read_member"]

MANIFEST = "MAR-INF/MANIFEST.json"
MANIFEST_MAX_BYTES = 1 << 20
MAX_UNPACK_RATIO = 100
# Members smaller than this unpack to no harm whatever their ratio (a config of zeros packs 1000x too).
_RATIO_FLOOR_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class MarArchive:
    """What a ``.mar``'s manifest says, checked against its members."""

    path: Path
    model_name: str
    model_version: str  # as written, e.g. "1.0"; "" when absent
    serialized_file: str  # a member: TorchScript, a .pt2 program, or a state dict (with model_file)
    model_file: str | None  # a member: the eager model's Python source
    handler: str  # a built-in handler's name or a member (handler.py, handler.py:function)
    members: frozenset[str]


def _safe_member(archive: Path, field: str, value: str, members: frozenset[str]) -> str:
    """``value`` (manifest ``field``) as a member name of the archive; refused when it leaves the archive."""
    pure = PurePosixPath(value.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]) or not pure.parts:
        raise CorruptSource(
            f"{archive}: {MANIFEST} field '{field}' is {value!r}, a path outside the archive; a .mar names "
            "its own members only"
        )
    name = str(pure)
    if name not in members:
        raise CorruptSource(
            f"{archive}: {MANIFEST} field '{field}' names {name!r}, which the archive does not contain "
            f"(members: {', '.join(sorted(members)[:10])})"
        )
    return name


def _check_sizes(archive: Path, zipped: zipfile.ZipFile) -> None:
    """Refuse a zip bomb from the sizes the archive declares (zipfile never unpacks past them)."""
    for info in zipped.infolist():
        packed = max(info.compress_size, 1)
        if info.file_size > _RATIO_FLOOR_BYTES and info.file_size > MAX_UNPACK_RATIO * packed:
            raise CorruptSource(
                f"{archive}: member {info.filename!r} would unpack to {info.file_size:,} bytes from "
                f"{packed:,} ({info.file_size // packed}x, over {MAX_UNPACK_RATIO}x): refused as a zip bomb"
            )
        if info.filename == MANIFEST and info.file_size > MANIFEST_MAX_BYTES:
            raise CorruptSource(
                f"{archive}: {MANIFEST} is {info.file_size:,} bytes, over {MANIFEST_MAX_BYTES:,}; "
                "a manifest is a few hundred bytes"
            )


def _manifest(archive: Path, zipped: zipfile.ZipFile) -> dict[str, Any]:
    try:
        raw = zipped.read(MANIFEST)
    except KeyError:
        raise CorruptSource(
            f"{archive}: no {MANIFEST}; not a TorchServe model archive (make one with torch-model-archiver)"
        ) from None
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise CorruptSource(f"{archive}: {MANIFEST} is not valid JSON: {error}") from None
    model = manifest.get("model") if isinstance(manifest, dict) else None
    if not isinstance(model, dict):
        raise CorruptSource(f"{archive}: {MANIFEST} has no 'model' object")
    return model


def read_archive(path: Path) -> MarArchive:
    """The checked manifest of the ``.mar`` at ``path``; :class:`CorruptSource` naming what is wrong."""
    try:
        with zipfile.ZipFile(path) as zipped:
            _check_sizes(path, zipped)
            bad = zipped.testzip()
            if bad is not None:
                raise CorruptSource(
                    f"{path}: member {bad!r} is damaged (CRC mismatch); the archive is corrupt"
                )
            members = frozenset(info.filename for info in zipped.infolist() if not info.is_dir())
            model = _manifest(path, zipped)
    except FileNotFoundError:
        raise CorruptSource(f"{path}: no such file") from None
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise CorruptSource(
            f"{path}: not a readable zip archive (truncated or not a .mar?): {error}"
        ) from None

    def text(field: str, *, required: bool) -> str | None:
        value = model.get(field)
        if value is None or value == "":
            if required:
                raise CorruptSource(f"{path}: {MANIFEST} field 'model.{field}' is missing")
            return None
        if not isinstance(value, str):
            raise CorruptSource(f"{path}: {MANIFEST} field 'model.{field}' must be a string, not {value!r}")
        return value

    serialized = text("serializedFile", required=True)
    assert serialized is not None
    model_file = text("modelFile", required=False)
    handler = text("handler", required=False) or ""
    handler_file = handler.split(":", 1)[0]
    if handler_file.endswith(".py"):
        _safe_member(path, "model.handler", handler_file, members)
    return MarArchive(
        path=path,
        model_name=text("modelName", required=False) or path.stem,
        model_version=text("modelVersion", required=False) or "",
        serialized_file=_safe_member(path, "model.serializedFile", serialized, members),
        model_file=_safe_member(path, "model.modelFile", model_file, members) if model_file else None,
        handler=handler,
        members=members,
    )


def read_member(archive: MarArchive, member: str) -> bytes:
    """The bytes of ``member`` (one of ``archive.members``)."""
    with zipfile.ZipFile(archive.path) as zipped:
        return zipped.read(member)


def extract(archive: MarArchive, members: list[str], folder: Path) -> dict[str, Path]:
    """Write ``members`` of ``archive`` under ``folder``; where each went. Only checked member names are
    written, each inside ``folder``."""
    placed: dict[str, Path] = {}
    with zipfile.ZipFile(archive.path) as zipped:
        for member in members:
            target = folder / _safe_member(archive.path, member, member, archive.members)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            placed[member] = target
    return placed
