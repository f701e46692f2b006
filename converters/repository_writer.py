"""Placing a conversion into a model repository: ``NAME/VERSION/model.onnx``, ``conversion.json`` and, when
absent, ``NAME/config.yaml``.

Everything is written into a hidden staging folder beside its destination and moved into place with one
``rename`` at the end, so a failed or interrupted conversion leaves no half-written version behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import InvalidOption, RepositoryConflict
from .report import json_text
from .samples import KEPT_SAMPLES_FILE
from .tensor_specs import TensorSpec, oip_datatype

__all__ = [
    "Placement",
    "config_document",
    "existing_versions",
    "plan_placement",
    "publish",
    "staged_folder",
]


def existing_versions(model_dir: Path) -> list[int]:
    """The numeric version folders of a model, ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(entry.name) for entry in model_dir.iterdir() if entry.is_dir() and entry.name.isdigit())


class Placement:
    """Where one conversion goes: the repository, model folder and version."""

    def __init__(self, repository: Path, name: str, version: int) -> None:
        self.repository = repository
        self.name = name
        self.version = version
        self.model_dir = repository / name
        self.version_dir = self.model_dir / str(version)
        self.config_path = self.model_dir / "config.yaml"


def plan_placement(repository: Path, name: str, version: int | None) -> Placement:
    """Choose the version (one above the highest present unless given) and refuse an existing one."""
    if not name or name.startswith(".") or "/" in name or "\\" in name or name in {".", ".."}:
        raise InvalidOption(f"model name '{name}' is not a folder name; use letters, digits, '-', '_' or '.'")
    if repository.exists() and not repository.is_dir():
        raise InvalidOption(
            f"{repository}: is a file, not a repository folder; pass a directory to --repository"
        )
    versions = existing_versions(repository / name)
    if version is None:
        version = (versions[-1] + 1) if versions else 1
    elif version < 1:
        raise InvalidOption(f"--version {version}: versions are positive integers")
    elif version in versions:
        raise RepositoryConflict(
            f"{repository / name / str(version)}: version {version} of '{name}' exists; pick another "
            "--version, or omit it to use the next one"
        )
    return Placement(repository, name, version)


def _dims(spec: TensorSpec, batched: bool) -> list[int]:
    return list(spec.dims[1:] if batched else spec.dims)


def config_document(
    inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], max_batch_size: int
) -> dict[str, Any]:
    """The ``config.yaml`` content the server reads: batch size, dynamic batching when the model batches
    (an explicit ``max_batch_size`` alone runs every request by itself, as in Triton), and the signature with
    per-row dims."""
    batched = max_batch_size > 0
    # Delay 0 (Triton's default): a batch holds what queued while the instance was busy, so a lone client
    # waits for nothing; a longer delay trades its latency for fuller batches.
    batching: dict[str, Any] = {"dynamic_batching": {"max_queue_delay_us": 0}} if batched else {}
    return {
        "max_batch_size": max_batch_size,
        **batching,
        "inputs": [
            {"name": s.name, "datatype": oip_datatype(s.dtype), "dims": _dims(s, batched)} for s in inputs
        ],
        "outputs": [
            {"name": s.name, "datatype": oip_datatype(s.dtype), "dims": _dims(s, batched)} for s in outputs
        ],
    }


@contextlib.contextmanager
def staged_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A new hidden folder in ``parent`` to fill and then rename into place; whatever is still there when
    the block ends (it failed, or was interrupted, before the rename) is removed."""
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the server (maybe another user) must read it
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _move(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; fails if ``target`` appeared meanwhile (another conversion)."""
    try:
        os.rename(staging, target)
    except OSError as error:
        raise RepositoryConflict(
            f"{target}: appeared while converting ({error.strerror}); run the conversion again"
        ) from error


def publish(
    placement: Placement,
    *,
    model_bytes: bytes,
    report: dict[str, Any],
    config: dict[str, Any],
    samples: bytes | None = None,
) -> bool:
    """Write the version (and the config if the model has none) and move it into place; ``samples`` is the
    kept samples file's content (:data:`..samples.KEPT_SAMPLES_FILE`).

    Returns whether ``config.yaml`` was created. Raises :class:`RepositoryConflict` if the version appeared
    meanwhile.
    """
    placement.repository.mkdir(parents=True, exist_ok=True)
    new_model = not placement.model_dir.exists()
    parent = placement.repository if new_model else placement.model_dir
    with staged_folder(parent, f".{placement.name}-staging-") as staging:
        version_dir = staging / str(placement.version) if new_model else staging
        version_dir.mkdir(exist_ok=True)
        (version_dir / "model.onnx").write_bytes(model_bytes)
        (version_dir / "conversion.json").write_text(json_text(report), encoding="utf-8")
        if samples is not None:
            (version_dir / KEPT_SAMPLES_FILE).write_bytes(samples)
        config_text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
        if new_model:
            (staging / "config.yaml").write_text(config_text, encoding="utf-8")
            _move(staging, placement.model_dir)
            return True
        _move(staging, placement.version_dir)
    if placement.config_path.exists():
        return False
    pending = placement.model_dir / ".config.yaml.partial"
    pending.write_text(config_text, encoding="utf-8")
    os.replace(pending, placement.config_path)
    return True
