"""Which kind of source a path or string is, and the default options for it."""

from __future__ import annotations

import enum
import re
from pathlib import Path

from .errors import InvalidOption, SourceNotFound, UnknownFormat
from .options import (
    FactoryOptions,
    Framework,
    KerasOptions,
    SavedModelOptions,
    SourceOptions,
    TorchExportOptions,
    TorchScriptOptions,
)
from .tensor_specs import TensorSpec

__all__ = ["SourceKind", "default_options", "detect_kind", "kind_of_options"]

_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_SUFFIXES = ".pt2 (torch.export), .pt/.pth (TorchScript), .keras/.h5 (Keras), a SavedModel directory"


class SourceKind(enum.Enum):
    """The source formats; the value is what ``conversion.json`` records."""

    TORCH_EXPORT = "torch.export"
    TORCHSCRIPT = "torchscript"
    FACTORY = "factory"
    KERAS = "keras"
    SAVED_MODEL = "tensorflow-savedmodel"

    @property
    def framework(self) -> Framework | None:
        """The framework the source belongs to; ``None`` for a factory (known once it has run)."""
        return _FRAMEWORKS[self]


_FRAMEWORKS: dict[SourceKind, Framework | None] = {
    SourceKind.TORCH_EXPORT: "torch",
    SourceKind.TORCHSCRIPT: "torch",
    SourceKind.FACTORY: None,
    SourceKind.KERAS: "keras",
    SourceKind.SAVED_MODEL: "tensorflow",
}


def detect_kind(source: str) -> SourceKind:
    """The kind of ``source``, from its name and (for directories) its contents.

    Raises :class:`SourceNotFound` for a path that does not exist and :class:`UnknownFormat` for anything else
    that is not a known format.
    """
    path = Path(source)
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return SourceKind.SAVED_MODEL
        raise UnknownFormat(
            f"{source}: directory is not a TensorFlow SavedModel (no saved_model.pb); "
            f"give one of: {_SUFFIXES}, or package.module:factory"
        )
    if not path.exists():
        if _FACTORY.match(source):
            return SourceKind.FACTORY
        raise SourceNotFound(f"{source}: no such file or directory; check the path")
    suffix = path.suffix.lower()
    if suffix == ".pt2":
        return SourceKind.TORCH_EXPORT
    if suffix in {".pt", ".pth", ".torchscript"}:
        return SourceKind.TORCHSCRIPT
    if suffix in {".keras", ".h5", ".hdf5"}:
        return SourceKind.KERAS
    if suffix == ".onnx":
        raise UnknownFormat(f"{source}: already ONNX; copy it to REPOSITORY/NAME/1/model.onnx to serve it")
    raise UnknownFormat(f"{source}: unknown format '{suffix or path.name}'; give one of: {_SUFFIXES}")


def kind_of_options(options: SourceOptions) -> SourceKind:
    """The source kind an options object is for."""
    kinds: dict[type, SourceKind] = {
        TorchExportOptions: SourceKind.TORCH_EXPORT,
        TorchScriptOptions: SourceKind.TORCHSCRIPT,
        FactoryOptions: SourceKind.FACTORY,
        KerasOptions: SourceKind.KERAS,
        SavedModelOptions: SourceKind.SAVED_MODEL,
    }
    return kinds[type(options)]


def default_options(
    kind: SourceKind,
    *,
    source: str,
    inputs: tuple[TensorSpec, ...] = (),
    weights: Path | None = None,
    framework: Framework | None = None,
    opset: int | None = None,
) -> SourceOptions:
    """The options object for ``kind`` from the CLI's flat options, refusing those that do not apply."""
    if framework is not None and kind.framework not in (None, framework):
        raise InvalidOption(
            f"{source}: is a {kind.framework} model ({kind.value}), not {framework}; drop or fix --framework"
        )
    if weights is not None and kind is not SourceKind.FACTORY:
        raise InvalidOption(
            f"{source}: --weights applies only to package.module:factory sources; the file has its weights"
        )
    if kind is SourceKind.TORCH_EXPORT:
        return TorchExportOptions(inputs=inputs, opset=opset)
    if kind is SourceKind.TORCHSCRIPT:
        return TorchScriptOptions(inputs=inputs, opset=opset)
    if kind is SourceKind.KERAS:
        return KerasOptions(inputs=inputs, opset=opset)
    if kind is SourceKind.SAVED_MODEL:
        return SavedModelOptions(inputs=inputs, opset=opset)
    return FactoryOptions(weights=weights, inputs=inputs, framework=framework, opset=opset)
