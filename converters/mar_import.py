"""``import_mar``: a TorchServe model archive converted into a model repository, as ``convert`` would.

The serialized file decides the path: TorchScript (or a ``.pt2`` program) converts directly; an eager model
(``modelFile`` + a state dict as ``serializedFile``) converts through the factory path, its one
``torch.nn.Module`` class imported from the archive's ``model.py`` in a temporary folder (this runs the
archive's model code now, at convert time, as ``convert package.module:factory`` runs the user's code; the
server never does). The handler is read, never run (:mod:`.mar_handlers`). ``index_to_name.json`` becomes
the model's ``labels.txt``. Nothing is written to the repository unless the conversion succeeds.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .api import DEFAULT_MAX_BATCH_SIZE, Progress, convert
from .errors import CorruptSource, MissingInputSpec
from .mar_archive import MANIFEST, MarArchive, extract, read_archive, read_member
from .mar_handlers import HandlerReport, describe_handler, labels_from_index_to_name
from .options import FactoryOptions, SourceOptions, TorchExportOptions, TorchScriptOptions, VerifyOptions
from .report import ConversionReport
from .tensor_specs import TensorSpec

__all__ = ["MarImport", "import_mar"]

_LABEL_FILES = ("index_to_name.json",)


@dataclass(frozen=True, slots=True)
class MarImport:
    """What :func:`import_mar` did: the conversion, the archive's handler, the labels written (or None)."""

    report: ConversionReport
    archive: MarArchive
    path: str  # "torchscript", "torch.export" or "eager (factory)"
    handler: HandlerReport
    labels_path: Path | None
    unused: tuple[str, ...]  # members nothing read (extra files: vocabularies, configs, requirements.txt)


def _version(text: str) -> int | None:
    whole, _, fraction = text.partition(".")
    return int(whole) if whole.isdigit() and int(whole) > 0 and fraction.strip("0") == "" else None


def _model_class(archive: MarArchive, source: bytes) -> str:
    """The one ``nn.Module`` class ``modelFile`` defines (as TorchServe requires), found by parsing it."""
    field = f"{archive.path}: manifest field 'model.modelFile' ({archive.model_file})"
    try:
        tree = ast.parse(source.decode("utf-8", "replace"), str(archive.model_file))
    except SyntaxError as error:
        raise CorruptSource(f"{field} does not parse: {error.msg} (line {error.lineno})") from None
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    modules = [c for c in classes if any("Module" in ast.unparse(base) for base in c.bases)]
    chosen = modules if len(modules) == 1 else classes
    if len(chosen) != 1:
        names = ", ".join(c.name for c in classes) or "none"
        raise CorruptSource(
            f"{field} must define exactly one torch.nn.Module class, as TorchServe requires (found: {names})"
        )
    return chosen[0].name


@contextmanager
def _importable(folder: Path, module: str) -> Iterator[None]:
    """``module`` (a file in ``folder``) importable while the conversion runs, forgotten after it."""
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(module, None)


def _write_labels(archive: MarArchive, folder: Path) -> Path | None:
    for member in archive.members:
        if Path(member).name in _LABEL_FILES:
            labels = labels_from_index_to_name(read_member(archive, member))
            if labels:
                path = folder / "labels.txt"
                partial = path.with_suffix(f".{os.getpid()}.partial")
                partial.write_text("\n".join(labels) + "\n", encoding="utf-8")
                partial.replace(path)
                return path
    return None


def import_mar(
    path: str | Path,
    *,
    repository: str | Path,
    inputs: tuple[TensorSpec, ...],
    name: str | None = None,
    version: int | None = None,
    opset: int | None = None,
    verification: VerifyOptions | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    progress: Progress | None = None,
    quiet: bool = True,
) -> MarImport:
    """Convert the ``.mar`` at ``path`` into ``repository/NAME/VERSION`` (NAME: ``name`` or the manifest's
    ``modelName``; VERSION: ``version``, else the manifest's whole-number ``modelVersion``, else the next).
    ``inputs`` are required (TorchScript and state dicts keep no shapes). Raises a ``ConversionError``
    naming the archive and manifest field; then nothing is written."""
    archive = read_archive(Path(path))
    if not inputs:
        raise MissingInputSpec(
            f"{archive.path}: a .mar's model keeps no input shapes; give them: --input NAME:DTYPE:DIMS "
            "(e.g. --input image:float32:-1,3,224,224)"
        )
    handler_file = archive.handler.split(":", 1)[0]
    handler_source = read_member(archive, handler_file) if handler_file in archive.members else None
    handler = describe_handler(archive.handler, handler_source)
    chosen_version = version if version is not None else _version(archive.model_version)
    with tempfile.TemporaryDirectory(prefix="modelport-mar-") as scratch:
        folder = Path(scratch)
        options: SourceOptions
        if archive.model_file is None:
            source = extract(archive, [archive.serialized_file], folder)[archive.serialized_file]
            pt2 = archive.serialized_file.endswith(".pt2")
            options = (
                TorchExportOptions(inputs=inputs, opset=opset)
                if pt2
                else TorchScriptOptions(inputs=inputs, opset=opset)
            )
            kind = "torch.export" if pt2 else "torchscript"
            spec = str(source)
            imported = ""
        else:
            python = [m for m in archive.members if m.endswith(".py") and "/" not in m and m != handler_file]
            wanted = dict.fromkeys([archive.serialized_file, archive.model_file, *python])
            placed = extract(archive, list(wanted), folder)
            class_name = _model_class(archive, placed[archive.model_file].read_bytes())
            imported = f"mar_model_{uuid.uuid4().hex[:12]}"
            placed[archive.model_file].rename(folder / f"{imported}.py")
            options = FactoryOptions(
                weights=placed[archive.serialized_file], inputs=inputs, framework="torch", opset=opset
            )
            kind = "eager (factory)"
            spec = f"{imported}:{class_name}"
        with _importable(folder, imported) if imported else _nothing():
            report = convert(
                spec,
                repository=repository,
                name=name or archive.model_name,
                version=chosen_version,
                options=options,
                verification=verification,
                max_batch_size=max_batch_size,
                progress=progress,
                quiet=quiet,
            )
    labels = _write_labels(archive, report.model_path.parent.parent)
    used = {MANIFEST, archive.serialized_file, archive.model_file, handler_file}
    unused = tuple(
        sorted(
            m
            for m in archive.members
            if m not in used and not m.endswith(".py") and Path(m).name not in _LABEL_FILES
        )
    )
    return MarImport(
        report=report, archive=archive, path=kind, handler=handler, labels_path=labels, unused=unused
    )


@contextmanager
def _nothing() -> Iterator[None]:
    yield
