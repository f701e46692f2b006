"""The model repository on disk: Triton's layout ``REPO/MODEL/VERSION/model.onnx`` + optional ``config.yaml``.

Scanning reads only directory entries, file stats and ``config.yaml`` (parsed again only when the file
changed: a poll of an unchanged repository does no YAML work); ONNX files are opened by the model manager.
Each model gets a fingerprint of what it depends on, so poll mode can tell what changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..model_config import ModelConfig, ModelConfigError, load_model_config

__all__ = ["CONFIG_FILE", "MODEL_FILE", "ModelSource", "Repository", "VersionSource"]

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.onnx"
# Triton's rule: version directories are numbers that do not start with 0.
_VERSION_DIR = re.compile(r"[1-9][0-9]*")

Stamp = tuple[int, int]  # (mtime_ns, size); _MISSING when the file is missing
_MISSING: Stamp = (0, -1)
_Identity = tuple[int, int, int, int]  # (inode, mtime_ns, ctime_ns, size): ctime catches a chmod too


@dataclass(frozen=True, slots=True)
class VersionSource:
    """One version directory; ``stamp`` changes whenever ``model.onnx`` is replaced."""

    version: int
    path: Path  # .../MODEL/VERSION/model.onnx
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class ModelSource:
    """One model directory as found on disk.

    ``config`` is None exactly when ``config_error`` says why ``config.yaml`` was refused.
    """

    name: str
    directory: Path
    config: ModelConfig | None
    config_error: str | None
    config_stamp: Stamp
    versions: dict[int, VersionSource]

    @property
    def config_file(self) -> Path:
        return self.directory / CONFIG_FILE

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


class Repository:
    """A directory of models; :meth:`scan` returns what it holds right now."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._configs: dict[Path, tuple[_Identity, ModelConfig | None, str | None]] = {}

    def model_names(self) -> list[str]:
        """Names of the model directories (hidden ones skipped), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

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
        """One model's directory; raises ``FileNotFoundError`` if it does not exist."""
        directory = self.root / name
        if not directory.is_dir():
            raise FileNotFoundError(f"no model directory {directory}")
        config_file = directory / CONFIG_FILE
        config, error, config_stamp = self._read_config(config_file)
        versions = {
            int(entry.name): VersionSource(int(entry.name), entry / MODEL_FILE, _stamp(entry / MODEL_FILE))
            for entry in directory.iterdir()
            if entry.is_dir() and _VERSION_DIR.fullmatch(entry.name)
        }
        return ModelSource(name, directory, config, error, config_stamp, versions)

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
            config, error = load_model_config(path), None
        except ModelConfigError as refused:
            config, error = None, str(refused)
        if identity is None:
            self._configs.pop(path, None)
        else:
            self._configs[path] = (identity, config, error)
        return config, error, stamp
