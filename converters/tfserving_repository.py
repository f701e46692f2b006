"""TF Serving model base paths converted into a modelport repository: every ``BASE/M/VERSION/saved_model.pb``
becomes ``REPO/M/VERSION/model.onnx`` through :func:`~.api.convert` (so each is verified and leaves its
report), keeping the version numbers.

The models are the folders of one base (``--from tfserving BASE``, as TF Serving's ``--model_base_path``
holds one model per folder) or those a ModelServerConfig names (``--model-config-file models.config``, TF
Serving's text format: ``model_config_list { config { name base_path model_platform } }``; a relative
base_path is read from the config file's folder). As TF Serving, a version is a folder whose name is a number,
and other folders are skipped. A version that fails is reported with its reason and the others convert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .api import convert
from .errors import ConversionError, InvalidOption, SourceNotFound
from .report import ConversionReport

__all__ = [
    "TfServingModel",
    "VersionResult",
    "convert_tfserving",
    "models_from_config",
    "models_in_base",
    "versions_of",
]

# tensorflow-serving-api requires the full tensorflow package; its code runs on tensorflow-cpu.
_INSTALL = "pip install --no-deps tensorflow-serving-api==2.21.0"


@dataclass(frozen=True, slots=True)
class TfServingModel:
    """One model TF Serving would serve: its name and the folder of its version folders."""

    name: str
    base_path: Path


@dataclass(frozen=True, slots=True)
class VersionResult:
    """One version's conversion: its report, or why it failed."""

    name: str
    version: int
    source: Path
    report: ConversionReport | None = None
    error: str | None = None


def versions_of(model: TfServingModel) -> list[int]:
    """The version numbers under ``model.base_path`` (folders named by a number), ascending."""
    if not model.base_path.is_dir():
        raise SourceNotFound(f"{model.base_path}: model '{model.name}' has no such folder; check base_path")
    return sorted(int(p.name) for p in model.base_path.iterdir() if p.is_dir() and p.name.isdecimal())


def models_in_base(base: Path) -> list[TfServingModel]:
    """The models of a base folder: each subfolder holding at least one version folder, by name."""
    if not base.is_dir():
        raise SourceNotFound(f"{base}: no such folder; give the folder that holds one folder per model")
    models = [TfServingModel(p.name, p) for p in sorted(base.iterdir()) if p.is_dir()]
    found = [model for model in models if versions_of(model)]
    if not found:
        raise SourceNotFound(
            f"{base}: no model folders with version folders (BASE/MODEL/1/saved_model.pb); check the path"
        )
    return found


def models_from_config(path: Path) -> list[TfServingModel]:
    """The models a ModelServerConfig text file names; :class:`InvalidOption` naming the file and field."""
    try:
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError:
        raise InvalidOption(
            f"{path}: reading TF Serving's model config needs tensorflow-serving-api: {_INSTALL}"
        ) from None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidOption(f"{path}: cannot be read ({error})") from None
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise InvalidOption(f"{path}: not a TF Serving ModelServerConfig in text format ({error})") from None
    if config.WhichOneof("config") != "model_config_list":
        raise InvalidOption(f"{path}: expected model_config_list {{ config {{ name: ... base_path: ... }} }}")
    models = []
    for index, entry in enumerate(config.model_config_list.config):
        where = f"{path}: model_config_list.config[{index}]"
        if not entry.name or not entry.base_path:
            raise InvalidOption(f"{where}: give both name and base_path")
        if entry.model_platform not in ("", "tensorflow"):
            raise InvalidOption(
                f"{where}.model_platform: '{entry.model_platform}' is not a TensorFlow SavedModel; only "
                "'tensorflow' models convert"
            )
        base_path = Path(entry.base_path)
        models.append(
            TfServingModel(entry.name, base_path if base_path.is_absolute() else path.parent / base_path)
        )
    if not models:
        raise InvalidOption(f"{path}: model_config_list names no model")
    return models


def convert_tfserving(
    models: list[TfServingModel],
    *,
    repository: Path,
    progress: Callable[[str], None] | None = None,
) -> list[VersionResult]:
    """Convert every version of ``models`` into ``repository`` (each as :func:`~.api.convert` does: verified,
    nothing written for one that fails); one result per version, failures included."""
    say = progress or (lambda _text: None)
    results: list[VersionResult] = []
    for model in models:
        for version in versions_of(model):
            source = model.base_path / str(version)
            say(f"Converting {model.name} version {version} ({source})")
            try:
                report = convert(source, repository=repository, name=model.name, version=version)
            except ConversionError as error:
                results.append(VersionResult(model.name, version, source, error=str(error)))
            except Exception as error:
                reason = f"unexpected {type(error).__name__}: {error}"
                results.append(VersionResult(model.name, version, source, error=reason))
            else:
                results.append(VersionResult(model.name, version, source, report=report))
    return results
