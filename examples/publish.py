"""Puts a recipe's trained artefact into the model repository as version 1, replacing what was there.

Recipes work in ``build/examples/NAME/`` (ignored by git; emptied at the start of each build). The
framework's own artefact and the verification samples stay there, so the model can be re-converted by hand
with ``modelport convert``. The artefact is converted with ``modelport.converters.convert`` into a staging
repository; the labels file and any extra files (the sentiment model's ``vocabulary.json``) are added there
and ``config.yaml`` points at the labels; only then is ``REPOSITORY/NAME`` replaced as a whole, so a failed
recipe leaves the previous model in place and a rebuild leaves no stale files behind. A conversion that fails
raises ``modelport.converters.ConversionError``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

__all__ = [
    "BUILD_DIR",
    "DEFAULT_REPOSITORY",
    "KEPT_ROWS",
    "LABELS_FILE",
    "VERSION",
    "Built",
    "ModelSpec",
    "main_for",
    "publish",
    "replace_folder",
    "workdir_for",
]

VERSION = 1
# Held-out rows a recipe verifies on; the conversion keeps them beside the model (samples.npz), where quantize
# and export-mobile calibrate and judge on them: enough for a gate, small enough to commit (tens of kB).
KEPT_ROWS = 256
LABELS_FILE = "labels.txt"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPOSITORY = ROOT / "models"
BUILD_DIR = ROOT / "build" / "examples"


@dataclass(frozen=True)
class ModelSpec:
    """What a recipe publishes: the framework's artefact and the files served beside it."""

    name: str
    source: Path  # .pt2, .keras or a SavedModel directory
    labels: Sequence[str] = ()  # one per class of the (single) output; empty: no labels file
    samples: Mapping[str, npt.NDArray[np.generic]] = field(default_factory=dict)  # input name -> real rows
    extra_files: Sequence[Path] = ()  # copied beside config.yaml


@dataclass(frozen=True)
class Built:
    """One published model and the recipe's validation figure."""

    name: str
    directory: Path
    metric: str
    value: float


def _add_labels(config_path: Path, labels: Sequence[str]) -> None:
    config: dict[str, Any] = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    outputs = config.get("outputs")
    if not isinstance(outputs, list) or len(outputs) != 1:
        raise ValueError(f"{config_path}: labels need exactly one output, found {outputs!r}")
    outputs[0]["labels"] = LABELS_FILE
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, default_flow_style=None), encoding="utf-8")


def workdir_for(name: str) -> Path:
    """An empty ``build/examples/NAME/`` for one recipe's artefacts."""
    workdir = BUILD_DIR / name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    return workdir


def replace_folder(target: Path, new: Path, aside: Path) -> None:
    """Replace the folder ``target`` (if any) by the folder ``new``, by renames, never losing both.

    The old folder is renamed to ``aside`` (a path that does not exist yet, on the same file system), the new
    one renamed in, and only then is the old one deleted. If the new one cannot be moved in, the old one is
    renamed back and the error propagates.
    """
    previous = target.exists()
    if previous:
        target.rename(aside)
    try:
        new.rename(target)
    except BaseException:
        if previous:
            aside.rename(target)
        raise
    if previous:
        shutil.rmtree(aside)


def _shown(path: Path) -> Path:
    """``path`` relative to the current directory when inside it: what ``conversion.json`` records."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def publish(spec: ModelSpec, repository: Path, *, metric: str, value: float) -> Built:
    """Convert ``spec.source`` into ``repository/NAME/1`` with its labels; print one progress line."""
    from modelport.converters import VerifyOptions, convert

    repository.mkdir(parents=True, exist_ok=True)
    # Staged in a hidden folder inside the repository (servers skip hidden folders), so that swapping it in is
    # a rename on one file system and a polling server never sees half a model.
    with tempfile.TemporaryDirectory(prefix=f".{spec.name}-staging-", dir=repository) as staging_name:
        staging = Path(staging_name)
        samples_file: Path | None = None
        if spec.samples:
            samples_file = _shown(spec.source.parent / "samples.npz")
            np.savez(samples_file, **spec.samples)  # type: ignore[arg-type]  # numpy's stub wants ArrayLike
        report = convert(
            _shown(spec.source),
            repository=staging / "repository",
            name=spec.name,
            version=VERSION,
            verification=VerifyOptions(samples=samples_file),
            progress=lambda step: print(f"    {step}", flush=True),
        )
        print(
            f"    verified: max abs error {report.max_abs_error:.1e}, {report.onnx_bytes / 1024:.0f} KB",
            flush=True,
        )
        staged = staging / "repository" / spec.name
        if spec.labels:
            (staged / LABELS_FILE).write_text("\n".join(spec.labels) + "\n", encoding="utf-8")
            _add_labels(staged / "config.yaml", spec.labels)
        for extra in spec.extra_files:
            shutil.copy2(extra, staged / extra.name)
        target = repository / spec.name
        replace_folder(target, staged, staging / "previous")
    print(f"  {spec.name}: {metric} {value:.4f} -> {target}", flush=True)
    return Built(spec.name, target, metric, value)


def main_for(name: str, build: Callable[[Path, Path], Built]) -> None:
    """Command line of a single recipe: ``python -m examples.RECIPE [--repository DIR]``."""
    parser = argparse.ArgumentParser(description=build.__doc__)
    parser.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY, help="model repository")
    arguments = parser.parse_args()
    build(workdir_for(name), arguments.repository)
