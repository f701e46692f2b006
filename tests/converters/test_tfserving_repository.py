"""``modelport convert-repository --from tfserving`` end to end: the real command in a subprocess on a TF
Serving model base (BASE/MODEL/VERSION/saved_model.pb, SavedModels made here with tf.saved_model.save) and
on a ModelServerConfig; version numbers kept, each ONNX model checked against the SavedModel's arithmetic, a
broken version reported while the others convert."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    script = shutil.which("modelport", path=str(Path(sys.executable).parent))
    entry = [script] if script else [sys.executable, "-c", "from modelport.server.cli import main; main()"]
    command = [*entry, "convert-repository", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def _save_half_plus(path: Path, add: float) -> None:
    """TF Serving's half_plus_two test model (y = 0.5 x + add) as a SavedModel."""
    import tensorflow as tf

    class HalfPlus(tf.Module):  # type: ignore[misc]  # tensorflow has no type stubs
        def __init__(self) -> None:
            super().__init__()
            self.add = tf.Variable(add, dtype=tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])  # type: ignore[untyped-decorator]  # no stubs
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": 0.5 * x + self.add}

    module = HalfPlus()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def _answer(model: Path, x: list[float]) -> list[float]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: np.array(x, np.float32).reshape(-1, 1)})
    return [float(v) for v in np.asarray(y).reshape(-1)]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tfserving-base")
    _save_half_plus(root / "half_plus_two" / "1", 2.0)
    _save_half_plus(root / "half_plus_two" / "2", 3.0)
    (root / "half_plus_two" / "tmp-export").mkdir()  # not a number: TF Serving skips it, and so do we
    (root / "broken" / "7").mkdir(parents=True)
    (root / "broken" / "7" / "saved_model.pb").write_bytes(b"not a SavedModel")
    return root


@pytest.mark.slow
def test_every_version_converts_keeping_its_number_and_a_broken_one_is_reported(
    base: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "repo"
    result = run_cli("--from", "tfserving", base, "--repository", repository)
    assert result.returncode == 1, result.stdout + result.stderr  # one version failed
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken/7" in errors[0], result.stderr
    assert _answer(repository / "half_plus_two" / "1" / "model.onnx", [1.0, 4.0]) == [2.5, 4.0]
    assert _answer(repository / "half_plus_two" / "2" / "model.onnx", [1.0, 4.0]) == [3.5, 5.0]
    assert (repository / "half_plus_two" / "2" / "conversion.json").is_file()  # verified, with its report
    assert sorted(p.name for p in (repository / "half_plus_two").iterdir()) == ["1", "2", "config.yaml"]
    assert not (repository / "broken").exists()  # nothing half-written


@pytest.mark.slow
def test_model_config_file_names_the_models(base: Path, tmp_path: Path) -> None:
    config = tmp_path / "models.config"
    config.write_text(
        "model_config_list {\n"
        f'  config {{ name: "hpt" base_path: "{base / "half_plus_two"}" model_platform: "tensorflow" }}\n'
        "}\n"
    )
    repository = tmp_path / "repo"
    result = run_cli("--from", "tfserving", "--model-config-file", config, "--repository", repository)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (repository / "hpt").iterdir()) == ["1", "2", "config.yaml"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("model_config_list { config { name: 'm' } }", "give both name and base_path"),
        ("model_config_list { config { name: 'm' base_path: '/x' model_platform: 'pytorch' } }", "pytorch"),
        ("model_config_list { config { nme: 'm' } }", "not a TF Serving ModelServerConfig"),
    ],
)
def test_bad_model_config_file_is_one_error_line(tmp_path: Path, text: str, fragment: str) -> None:
    config = tmp_path / "models.config"
    config.write_text(text)
    result = run_cli("--from", "tfserving", "--model-config-file", config, "--repository", tmp_path / "repo")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0] and "models.config" in errors[0], result.stderr
    assert not (tmp_path / "repo").exists()
