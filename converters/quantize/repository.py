"""Reading a model version from the repository and adding a converted one as the next version.

Triton's layout: ``REPO/NAME/VERSION/model.onnx`` with an optional ``REPO/NAME/config.yaml``. A new version
is staged in a hidden folder inside the model's folder and renamed into place, so a server polling the
repository never sees a half-written version. The model's ``config.yaml`` is left as it is;
:func:`check_config` makes sure it still describes the converted model (input and output names and datatypes)
before anything is written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import QuantizeError
from ..repository_writer import existing_versions, staged_folder
from ..tensor_specs import oip_datatype, ort_dtype

__all__ = [
    "CONVERSION_REPORT",
    "ModelVersion",
    "check_config",
    "labelled_outputs",
    "publish_version",
    "resolve_version",
]

_MODEL_FILE = "model.onnx"
CONVERSION_REPORT = "quantization.json"  # marks a version made by `modelport quantize`
_CONFIG_FILE = "config.yaml"


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One model version in a repository."""

    model_dir: Path
    version: str
    model_path: Path

    @property
    def config_path(self) -> Path:
        return self.model_dir / _CONFIG_FILE


def resolve_version(repository: Path, name: str, version: str | None) -> ModelVersion:
    """Find ``name``'s ``version`` in ``repository``; errors list what does exist.

    The default is the highest version that is not itself a conversion; an explicit conversion is refused
    (quantizing a quantized model compounds the error and the gate would compare against the wrong model).
    """
    if not repository.is_dir():
        raise QuantizeError(f"{repository}: the repository folder does not exist")
    model_dir = repository / name
    if not model_dir.is_dir():
        models = sorted(p.name for p in repository.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise QuantizeError(
            f"{model_dir}: no model '{name}' in the repository (it has: {', '.join(models) or 'none'})"
        )
    versions = existing_versions(model_dir)
    listed = ", ".join(map(str, versions)) or "none"
    if version is None:
        originals = [v for v in versions if not (model_dir / str(v) / CONVERSION_REPORT).exists()]
        if not originals:
            raise QuantizeError(
                f"{model_dir}: no version to convert (versions with a {CONVERSION_REPORT} are conversions "
                f"already; it has: {listed})"
            )
        version = str(originals[-1])
    elif not (version.isdigit() and int(version) in versions):
        raise QuantizeError(f"{model_dir}: no version '{version}' (it has: {listed})")
    version_dir = model_dir / str(int(version))
    if (version_dir / CONVERSION_REPORT).exists():
        raise QuantizeError(
            f"{version_dir}: this version is already a conversion (it has a {CONVERSION_REPORT}); "
            "pick the FP32 version it came from with --version"
        )
    model_path = version_dir / _MODEL_FILE
    if not model_path.is_file():
        raise QuantizeError(f"{model_path}: the version has no {_MODEL_FILE}")
    return ModelVersion(model_dir, str(int(version)), model_path)


def _read_config(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise QuantizeError(f"{path}: cannot read it as YAML ({error})") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise QuantizeError(f"{path}: expected a mapping of keys at the top level")
    return data


def labelled_outputs(config_path: Path) -> tuple[str, ...]:
    """Names of the outputs that ``config.yaml`` gives a ``labels`` file (classifier outputs)."""
    outputs = _read_config(config_path).get("outputs") or []
    return tuple(str(o["name"]) for o in outputs if isinstance(o, dict) and o.get("labels") and "name" in o)


def _datatype(ort_type: str) -> str:
    """The config's datatype name (``FP32``) of an ONNX Runtime type, or the type itself when it has none."""
    dtype = ort_dtype(ort_type)
    return ort_type if dtype is None else oip_datatype(dtype)


def check_config(config_path: Path, model_path: Path) -> None:
    """Refuse a converted model that ``config.yaml``'s declared inputs/outputs no longer describe."""
    import onnxruntime as ort

    config = _read_config(config_path)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    actual = {
        "inputs": {a.name: _datatype(a.type) for a in session.get_inputs()},
        "outputs": {a.name: _datatype(a.type) for a in session.get_outputs()},
    }
    for section, tensors in actual.items():
        for entry in config.get(section) or []:
            if not isinstance(entry, dict) or "name" not in entry:
                continue
            name, declared = str(entry["name"]), entry.get("datatype")
            if name not in tensors:
                raise QuantizeError(
                    f"{config_path}: {section} '{name}' is not in the converted model "
                    f"(it has {sorted(tensors)})"
                )
            if declared is not None and str(declared) != tensors[name]:
                raise QuantizeError(
                    f"{config_path}: {section} '{name}' is declared {declared} but the converted model's is "
                    f"{tensors[name]}; keep the FP32 inputs/outputs (--keep-io-types) or write it elsewhere "
                    "(--output)"
                )


def publish_version(model_dir: Path, files: dict[str, Path]) -> Path:
    """Copy ``files`` (name in the version folder -> source) into a new version ``max + 1`` of ``model_dir``
    in one rename; return the new version folder."""
    with staged_folder(model_dir, ".modelport-staging-") as staging:
        for name, source in files.items():
            shutil.copyfile(source, staging / name)
        for _ in range(10):  # another writer may take the number first
            target = model_dir / str((existing_versions(model_dir) or [0])[-1] + 1)
            try:
                staging.rename(target)
            except OSError:
                if target.exists():
                    continue
                raise
            return target
    raise QuantizeError(f"{model_dir}: could not claim a new version number (other writers kept taking them)")


def _served(policy: dict[str, Any], versions: list[int]) -> list[int]:
    if policy.get("all"):
        return versions
    if policy.get("specific") is not None:
        return [v for v in versions if v in set(policy["specific"])]
    return versions[-int(policy.get("latest") or 1) :]


def serving_note(config_path: Path, model_dir: Path, new_version: int) -> str:
    """What ``config.yaml``'s ``version_policy`` (default: the latest 1) means for the new version."""
    policy = _read_config(config_path).get("version_policy") or {"latest": 1}
    if not isinstance(policy, dict):
        return f"{config_path}: version_policy is not a mapping; the server will say what it makes of it"
    versions = existing_versions(model_dir)
    served = _served(policy, versions)
    if new_version not in served:
        return (
            f"version_policy {policy} ({config_path}) leaves out version {new_version}: the server serves "
            f"{served} until the policy names it"
        )
    dropped = sorted(set(_served(policy, [v for v in versions if v != new_version])) - set(served))
    note = f"version_policy {policy}: the server serves versions {served} once it (re)loads the model"
    if dropped:
        note += f"; {dropped} no longer (version_policy: {{all: true}} in {config_path} serves both)"
    return note
