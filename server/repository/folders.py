"""The model repository on disk: Triton's layout ``REPO/MODEL/VERSION/model.onnx`` + an optional
``config.yaml``, or Triton's own ``config.pbtxt`` in its place (a folder with both is refused, naming both).

Scanning reads only directory entries, file stats and ``config.yaml`` (parsed again only when the file
changed: a poll of an unchanged repository does no YAML work); ONNX files are opened by the model manager.
Each model gets a fingerprint of what it depends on, so poll mode can tell what changed.

Only directories whose name follows :mod:`names`' rule are models (others are skipped with one warning),
and nothing is read through a link that leads outside the repository: a model directory, version directory,
``model.onnx`` or ``config.yaml`` that is a symbolic link resolving outside ``root`` makes the model
unavailable, with a reason that says which (links that stay inside the repository are followed).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..model_config import ModelConfig, ModelConfigError, load_model_config
from ..names import MAX_VERSION_DIGITS, is_model_name
from .layout import CONFIG_FILE, MODEL_FILE, TRITON_CONFIG_FILE
from .triton_pbtxt import load_triton_config

__all__ = ["CONFIG_FILE", "MODEL_FILE", "TRITON_CONFIG_FILE", "ModelSource", "Repository", "VersionSource"]
# Triton's rule: version directories are numbers that do not start with 0; ours also keeps the version rule's
# digit bound, so every version fits int64.
_VERSION_DIR = re.compile(rf"[1-9][0-9]{{0,{MAX_VERSION_DIGITS - 1}}}")

Stamp = tuple[int, int]  # (mtime_ns, size); _MISSING when the file is missing
_MISSING: Stamp = (0, -1)
_BOTH: Stamp = (-1, -1)  # config.yaml and config.pbtxt side by side: removing either changes the stamp
_Identity = tuple[int, int, int, int]  # (inode, mtime_ns, ctime_ns, size): ctime catches a chmod too

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VersionSource:
    """One version directory; ``stamp`` changes whenever ``model.onnx`` is replaced."""

    version: int
    path: Path  # .../MODEL/VERSION/model.onnx
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class ModelSource:
    """One model directory as found on disk.

    ``config`` is None exactly when ``config_error`` says why the config file was refused; ``config_name``
    is the file read (``config.yaml``, or ``config.pbtxt`` when only that one exists).
    """

    name: str
    directory: Path
    config: ModelConfig | None
    config_error: str | None
    config_stamp: Stamp
    versions: dict[int, VersionSource]
    refused: str | None = None  # why the model cannot serve whatever its config (a link leading outside)
    config_name: str = CONFIG_FILE

    @property
    def config_file(self) -> Path:
        return self.directory / self.config_name

    def with_config(self, config: ModelConfig) -> ModelSource:
        """This model with ``config`` in place of its folder's (a load request's), its versions' files the
        ones ``config`` names."""
        versions = self.versions
        if any(v.path.name != config.model_filename for v in versions.values()):
            versions = _versions([v.path.parent for v in versions.values()], config.model_filename)
        return dataclasses.replace(
            self, config=config, config_error=None, config_stamp=(0, 0), versions=versions
        )

    def served_versions(self) -> list[int]:
        """The versions the version policy selects (none when the config is broken)."""
        if self.config is None:
            return []
        return self.config.version_policy.select(list(self.versions))


def _stamp(path: Path) -> Stamp:
    try:
        stat = path.stat()
    except OSError:
        return _MISSING
    return (stat.st_mtime_ns, stat.st_size)


def _versions(entries: list[Path], filename: str) -> dict[int, VersionSource]:
    return {int(e.name): VersionSource(int(e.name), e / filename, _stamp(e / filename)) for e in entries}


def _escaped(  # noqa: PLR0917  (a ModelSource's fields)
    name: str,
    directory: Path,
    escaping: str,
    stamp: Stamp,
    versions: dict[int, VersionSource],
    config_name: str,
) -> ModelSource:
    refused = f"{escaping} is a link that leads outside the model repository; links must stay inside"
    return ModelSource(name, directory, None, refused, stamp, versions, refused, config_name)


class Repository:
    """A directory of models; :meth:`scan` returns what it holds right now."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._configs: dict[Path, tuple[_Identity, ModelConfig | None, str | None]] = {}
        self._misnamed: set[str] = set()  # directories already warned about

    def model_names(self) -> list[str]:
        """Names of the model directories, sorted: hidden ones skipped, and those whose name breaks the model
        name rule (no client could name them) skipped with one warning each."""
        if not self.root.is_dir():
            return []
        names = []
        for path in self.root.iterdir():
            if path.name.startswith(".") or not path.is_dir():
                continue
            if is_model_name(path.name):
                names.append(path.name)
            elif path.name not in self._misnamed:
                self._misnamed.add(path.name)
                logger.warning(
                    "repository directory %s is not a model: its name breaks the model name rule", ascii(path)
                )
        return sorted(names)

    def scan(self) -> dict[str, ModelSource]:
        """Every model in the repository, by name. One model that cannot be read is that model's error (its
        ``config_error``), never the scan's: the other models are still read."""
        names = self.model_names()
        present = set(names)  # a model directory that went also takes its cached config with it
        self._configs = {path: entry for path, entry in self._configs.items() if path.parent.name in present}
        sources = {name: self.read_model_or_error(name) for name in names}
        return {name: source for name, source in sources.items() if source is not None}

    def read_model_or_error(self, name: str) -> ModelSource | None:
        """Like :meth:`read_model`, but None when the directory is gone (meanwhile, or never was), and a
        source without a config saying why when it cannot be read (no permission, an I/O error)."""
        try:
            return self.read_model(name)
        except FileNotFoundError:
            return None
        except OSError as error:
            reason = f"model directory '{name}' cannot be read ({error.strerror or error})"
            return ModelSource(name, self.root / name, None, reason, _MISSING, {})

    def read_model(self, name: str) -> ModelSource:
        """One model's directory; raises ``FileNotFoundError`` if it does not exist or ``name`` breaks the
        model name rule (so no client-given name ever reaches a path outside ``root``)."""
        if not is_model_name(name):
            raise FileNotFoundError(f"'{name}' is not a model name")
        directory = self.root / name
        if not directory.is_dir():
            raise FileNotFoundError(f"no model directory '{name}'")
        yaml_file, triton_file = directory / CONFIG_FILE, directory / TRITON_CONFIG_FILE
        has_yaml, has_triton = os.path.lexists(yaml_file), os.path.lexists(triton_file)
        config_file = triton_file if has_triton and not has_yaml else yaml_file
        entries = [e for e in directory.iterdir() if _VERSION_DIR.fullmatch(e.name) and e.is_dir()]
        versions = _versions(entries, MODEL_FILE)
        # Checked before the config is read: a link to a file outside is never opened.
        escaping = self._escaping([directory, config_file, *entries])
        if escaping is not None:
            return _escaped(name, directory, escaping, _stamp(config_file), versions, config_file.name)
        if has_yaml and has_triton:
            both = (
                f"model directory '{name}' has both {CONFIG_FILE} and {TRITON_CONFIG_FILE}; keep one "
                f"({CONFIG_FILE} is modelport's schema, {TRITON_CONFIG_FILE} Triton's ModelConfig)"
            )
            return ModelSource(name, directory, None, both, _BOTH, versions)
        config, error, config_stamp = self._read_config(config_file)
        if config is not None and config.model_filename != MODEL_FILE:
            versions = _versions(entries, config.model_filename)
        escaping = self._escaping([version.path for version in versions.values()])
        if escaping is not None:
            return _escaped(name, directory, escaping, config_stamp, versions, config_file.name)
        return ModelSource(name, directory, config, error, config_stamp, versions, None, config_file.name)

    def _escaping(self, paths: list[Path]) -> str | None:
        """The first of ``paths`` (each below ``root``, by names of one component) that is a symbolic link
        resolving outside ``root``, relative to ``root``; None if there is none. Only links are resolved: a
        scan without links costs one ``lstat`` per path."""
        root: Path | None = None
        for path in paths:
            if not os.path.islink(path):
                continue
            root = root or self.root.resolve()
            if not path.resolve().is_relative_to(root):
                return path.relative_to(self.root).as_posix()
        return None

    def _read_config(self, path: Path) -> tuple[ModelConfig | None, str | None, Stamp]:
        """The parsed ``config.yaml`` (or why it was refused), from the cache while the file is unchanged, and
        its stamp. One stat serves both, taken before the read: a file replaced meanwhile differs next
        time."""
        try:
            stat = path.stat()
        except OSError:  # missing (the all-default config) or not even stat-able: nothing to cache by
            identity, stamp = None, _MISSING
        else:
            identity = (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
            stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._configs.get(path)
        if identity is not None and cached is not None and cached[0] == identity:
            return cached[1], cached[2], stamp
        config: ModelConfig | None
        try:
            if path.name == TRITON_CONFIG_FILE:
                config, error = load_triton_config(path, model=path.parent.name), None
            else:
                config, error = load_model_config(path), None
        except FileNotFoundError:  # config.pbtxt removed between the listing and the read
            config, error = ModelConfig(), None
        except ModelConfigError as refused:
            config, error = None, str(refused)
        if identity is None:
            self._configs.pop(path, None)
        else:
            self._configs[path] = (identity, config, error)
        return config, error, stamp
